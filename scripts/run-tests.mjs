#!/usr/bin/env node
// Runs node's test runner on every compiled *.test.js below the given directories (Node 20's
// runner takes files, not globs). Extra runner flags may follow `--`.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const separator = process.argv.indexOf('--');
const dirs = separator === -1 ? process.argv.slice(2) : process.argv.slice(2, separator);
const flags = separator === -1 ? [] : process.argv.slice(separator + 1);

function walk(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const files = dirs.flatMap(walk).sort();
if (files.length === 0) {
  console.error(`no *.test.js files under ${dirs.join(', ')}: run npm run build first`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...flags, ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);

#!/usr/bin/env node
// Renders the README's option tables from the config modules (the single source of truth for
// schema, defaults and docs) and writes them between the README's markers:
//   <!-- plugin-options:start --> … <!-- plugin-options:end -->
//   <!-- task-options:start --> … <!-- task-options:end -->
// `--check` exits 1 when the README is out of date (the unit tests run the same check).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderReadmeTables } from '../dist/src/config/render-docs.js';

const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));
const current = readFileSync(readmePath, 'utf8');
const next = renderReadmeTables(current);
if (process.argv.includes('--check')) {
  if (next !== current) {
    console.error('README.md option tables are out of date: run node scripts/render-options.mjs');
    process.exit(1);
  }
} else if (next !== current) {
  writeFileSync(readmePath, next);
  console.log('README.md option tables updated');
}

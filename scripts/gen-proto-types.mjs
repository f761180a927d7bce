#!/usr/bin/env node
// Generates TypeScript types for every message and service in proto/ into src/gen/ with
// @grpc/proto-loader's generator. The generated files are type-only (the plugin loads the
// .proto files at run time with proto-loader), never edited and not committed. The generator
// leaves unused imports behind, which our strict tsconfig rejects, so each file is marked
// `@ts-nocheck`: its types still resolve for the code that imports them.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const protoDir = join(root, 'proto');
const outDir = join(root, 'src', 'gen');

function walk(dir, suffix) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path, suffix);
    return path.endsWith(suffix) ? [path] : [];
  });
}

rmSync(outDir, { recursive: true, force: true });
const protos = walk(protoDir, '.proto')
  .map((p) => relative(protoDir, p))
  .sort();
execFileSync(
  process.execPath,
  [
    join(root, 'node_modules', '@grpc', 'proto-loader', 'build', 'bin', 'proto-loader-gen-types.js'),
    '--keepCase',
    '--longs=Number',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--grpcLib=@grpc/grpc-js',
    '--importFileExtension=.js',
    `--includeDirs=${protoDir}`,
    `--outDir=${outDir}`,
    ...protos,
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
for (const file of walk(outDir, '.ts')) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, `// Generated from proto/ by scripts/gen-proto-types.mjs; do not edit.\n// @ts-nocheck\n${text}`);
}
console.log(`generated types for ${protos.length} proto files in ${relative(root, outDir)}`);

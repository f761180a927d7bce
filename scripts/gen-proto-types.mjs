#!/usr/bin/env node
// Generates, from every .proto file in proto/, into src/gen/ (never edited, not committed):
// - TypeScript types for each message and service, with @grpc/proto-loader's generator;
// - descriptor.ts: the files parsed once here, as protobufjs JSON (names as spelled in the
//   .proto files, imports such as google/protobuf/timestamp.proto included), which
//   src/rpc/proto.ts turns into gRPC service definitions at start without parsing .proto text. The generator
// leaves unused imports behind, which our strict tsconfig rejects, so each file is marked
// `@ts-nocheck`: its types still resolve for the code that imports them.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
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
// parsed as proto-loader parses them (keepCase; its copies of the google/protobuf files)
const require = createRequire(import.meta.url);
require('@grpc/proto-loader'); // registers the google/protobuf files with protobufjs
const { loadProtosWithOptionsSync } = require('@grpc/proto-loader/build/src/util.js');
const parsed = loadProtosWithOptionsSync(protos, { keepCase: true, includeDirs: [protoDir] });
parsed.resolveAll();
const descriptor = JSON.stringify(parsed.toJSON());
writeFileSync(
  join(outDir, 'descriptor.ts'),
  `// Generated from proto/ by scripts/gen-proto-types.mjs; do not edit.\n// protobufjs JSON of ${protos.join(', ')}\nexport const PROTO_DESCRIPTOR: unknown = JSON.parse(${JSON.stringify(descriptor)});\n`,
);
console.log(`generated types for ${protos.length} proto files in ${relative(root, outDir)}`);

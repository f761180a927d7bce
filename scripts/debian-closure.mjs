#!/usr/bin/env node
// Builds a Nix closure from installed Debian programs (test/support/debian-closure.ts; run
// `npm run build` first) and prints it as JSON: the program's store path, its library and
// data store paths, its requisites and its GC roots. Root (nix-build without a daemon).
//
//   node scripts/debian-closure.mjs --name nginx --program /usr/sbin/nginx=bin/nginx \
//     --data nginx-mime-types:/etc/nginx/mime.types=conf/mime.types
//   node scripts/debian-closure.mjs --spec spec.json      # a DebianClosureSpec as JSON
//
// --program FROM=TO     a host file or directory copied to TO in the program's store path
// --data NAME:FROM=TO   a data group's host file or directory (repeat NAME to add paths)
// --gc-roots DIR        where the GC roots go (default under /nix/var/nix/gcroots)
import { readFileSync } from 'node:fs';
import { buildDebianClosure } from '../dist/test/support/debian-closure.js';

const usage = () => {
  process.stderr.write('usage: debian-closure.mjs --name NAME --program FROM=TO... [--data NAME:FROM=TO...] [--gc-roots DIR] | --spec FILE\n');
  process.exit(2);
};
const args = process.argv.slice(2);
let spec = { name: '', programs: [], data: [] };
const tree = (text) => {
  const at = text.lastIndexOf('=');
  if (at <= 0) usage();
  return { from: text.slice(0, at), to: text.slice(at + 1) };
};
for (let i = 0; i < args.length; i++) {
  const value = args[i + 1];
  if (value === undefined) usage();
  switch (args[i]) {
    case '--spec':
      spec = JSON.parse(readFileSync(value, 'utf8'));
      break;
    case '--name':
      spec.name = value;
      break;
    case '--program':
      spec.programs.push(tree(value));
      break;
    case '--data': {
      const colon = value.indexOf(':');
      if (colon <= 0) usage();
      const name = value.slice(0, colon);
      let group = spec.data.find((d) => d.name === name);
      if (group === undefined) {
        group = { name, paths: [] };
        spec.data.push(group);
      }
      group.paths.push(tree(value.slice(colon + 1)));
      break;
    }
    case '--gc-roots':
      spec.gcRootsDir = value;
      break;
    default:
      usage();
  }
  i++;
}
if (spec.name === '' || spec.programs.length === 0) usage();
try {
  const started = Date.now();
  const closure = buildDebianClosure(spec);
  process.stdout.write(`${JSON.stringify(closure, null, 2)}\n`);
  process.stderr.write(`debian-closure: ${closure.path} (${closure.requisites.length} store paths) in ${Date.now() - started} ms\n`);
} catch (error) {
  process.stderr.write(`debian-closure: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

/**
 * Enforces the module layering of the README's "Development" section on the source tree:
 *   main → plugin → rpc → driver → {nix, rootfs, runtime, cgroup} → host
 * with errors, log, version, paths and config as leaves anyone may import. Nothing imports
 * upward; only rpc/ and plugin/ know protobuf and gRPC; only the I/O layers touch the
 * filesystem or spawn processes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

const RANK: Readonly<Record<string, number>> = {
  'main.ts': 0,
  plugin: 1,
  rpc: 2,
  driver: 3,
  nix: 4,
  rootfs: 4,
  runtime: 4,
  cgroup: 4,
  host: 5,
};
const LEAVES = new Set(['errors.ts', 'version.ts', 'paths.ts', 'log', 'config', 'types']);
const PROTOCOL_LAYERS = new Set(['rpc', 'plugin']);
const IO_MODULES = new Set(['node:fs', 'node:fs/promises', 'node:child_process', 'execa', 'node:net']);
const IO_ALLOWED = (file: string) => /^(host|cgroup|runtime|plugin)\//.test(file) || ['main.ts', 'log/logger.ts', 'rpc/proto.ts'].includes(file);

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'gen' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

function edges(): Edge[] {
  const result: Edge[] = [];
  const pattern = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(pattern)) {
      const specifier = match[3] ?? '';
      const typeOnly = match[2] !== undefined;
      const from = relative(SRC, file);
      const to = specifier.startsWith('.') ? relative(SRC, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts') : specifier;
      result.push({ from, to, typeOnly });
    }
  }
  return result;
}

const group = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : file);

describe('module layering', () => {
  const all = edges();

  it('finds the source files and their imports', () => {
    assert.ok(all.length > 50, `only ${all.length} imports found`);
  });

  it('never imports upward', () => {
    const upward = all.filter((e) => {
      if (e.to.startsWith('node:') || !e.to.endsWith('.ts')) return false;
      const from = group(e.from);
      const to = group(e.to);
      if (LEAVES.has(to) || to === 'gen' || from === to) return false;
      if (LEAVES.has(from)) return true; // leaves import only leaves
      return (RANK[to] ?? -1) <= (RANK[from] ?? 99) && !(RANK[to] === 4 && RANK[from] === 4);
    });
    assert.deepEqual(
      upward.map((e) => `${e.from} → ${e.to}`),
      [],
    );
  });

  it('lets rpc/ talk to driver/ only (and the leaves), and plugin/ do no host I/O through host/', () => {
    const slips = all.filter((e) => {
      if (e.to.startsWith('node:') || !e.to.endsWith('.ts')) return false;
      const from = group(e.from);
      const to = group(e.to);
      if (from === 'rpc') return !(to === 'rpc' || to === 'driver' || to === 'gen' || LEAVES.has(to));
      if (from === 'plugin') return to === 'host';
      return false;
    });
    assert.deepEqual(
      slips.map((e) => `${e.from} → ${e.to}`),
      [],
    );
  });

  it('keeps protobuf and gRPC inside rpc/ and plugin/', () => {
    const leaks = all.filter(
      (e) => !PROTOCOL_LAYERS.has(group(e.from)) && (e.to.startsWith('gen/') || e.to.startsWith('@grpc/') || e.to === 'google-protobuf'),
    );
    assert.deepEqual(
      leaks.map((e) => `${e.from} → ${e.to}`),
      [],
    );
  });

  it('does file and process I/O only in host/, cgroup/, runtime/ and the process edges', () => {
    const leaks = all.filter((e) => !e.typeOnly && IO_MODULES.has(e.to) && !IO_ALLOWED(e.from));
    assert.deepEqual(
      leaks.map((e) => `${e.from} → ${e.to}`),
      [],
    );
  });
});

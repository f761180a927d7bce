/**
 * Synthetic store paths for the store view benches: `view-bench-<i>` (~22 files, dirs and
 * symlinks each, like an average nixpkgs closure member) with deterministic content, so they
 * are the same store paths on every run. Their list is cached in
 * /nix/var/nomad-driver-nix-bench/paths.json and they are only added (with `nix-store --add`,
 * many per call) when missing. They have no GC root: a garbage collection removes them and the
 * next run adds them again.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const CACHE_DIR = '/nix/var/nomad-driver-nix-bench';
const CACHE = join(CACHE_DIR, 'paths.json');
const ADD_BATCH = 250;

/** Runs `file` and returns its trimmed stdout; throws on a non-zero exit. */
export const run = (file: string, args: readonly string[]): string =>
  execFileSync(file, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 }).trim();

/** Writes the source tree of synthetic store path `i` below `dir`. */
function writeSynthetic(dir: string, i: number): string {
  const root = join(dir, `view-bench-${i}`);
  for (const sub of ['bin', 'lib', 'share/doc', 'share/man/man1']) mkdirSync(join(root, sub), { recursive: true });
  writeFileSync(join(root, 'bin', `tool-${i}`), `#!/bin/sh\necho tool ${i}\n`, { mode: 0o555 });
  writeFileSync(join(root, 'bin', `helper-${i}`), `#!/bin/sh\necho helper ${i}\n`, { mode: 0o555 });
  for (let j = 0; j < 8; j += 1) writeFileSync(join(root, 'lib', `lib${i}-${j}.so`), `lib ${i} ${j} `.repeat(40), { mode: 0o444 });
  for (let j = 0; j < 4; j += 1) writeFileSync(join(root, 'share', 'doc', `doc-${j}.txt`), `doc ${i} ${j}\n`, { mode: 0o444 });
  writeFileSync(join(root, 'share', 'man', 'man1', `tool-${i}.1`), `.TH tool-${i}\n`, { mode: 0o444 });
  symlinkSync(`lib${i}-0.so`, join(root, 'lib', `lib${i}.so`));
  symlinkSync(`../bin/tool-${i}`, join(root, 'share', `tool-${i}`));
  return root;
}

/** The `count` synthetic store paths, added when the cached list is missing or any is invalid. */
export function syntheticPaths(count: number): { paths: string[]; addedMs: number } {
  if (existsSync(CACHE)) {
    const cached = JSON.parse(readFileSync(CACHE, 'utf8')) as string[];
    if (cached.length === count && run('nix-store', ['--check-validity', '--print-invalid', ...cached]) === '') return { paths: cached, addedMs: 0 };
  }
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'view-bench-src-'));
  try {
    const sources = Array.from({ length: count }, (_, i) => writeSynthetic(dir, i));
    const paths: string[] = [];
    for (let i = 0; i < sources.length; i += ADD_BATCH) paths.push(...run('nix-store', ['--add', ...sources.slice(i, i + ADD_BATCH)]).split('\n'));
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(CACHE, `${JSON.stringify(paths)}\n`);
    return { paths, addedMs: performance.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

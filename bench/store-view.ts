/**
 * Prints how long a store view takes to build (cold) and to find again (warm) for closures of
 * 10 to 2000 store paths, next to `cp -al` of the same paths for reference.
 *   npx tsc -p . && node dist/bench/store-view.js [runs]
 *
 * The synthetic store paths (`view-bench-<i>`: ~22 files, dirs and symlinks each, like an
 * average nixpkgs closure member) have deterministic content, so they are the same store paths
 * on every run; their list is cached in /nix/var/nomad-driver-nix-bench/paths.json and they are
 * only added (with `nix-store --add`, many per call) when missing. They have no GC root: a
 * garbage collection removes them and the next run adds them again.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureStoreView, removeStoreView } from '../src/nix/store-view.js';
import { reportFigure } from './figures.js';

const SIZES = [10, 100, 1000, 2000] as const;
const MAX = SIZES[SIZES.length - 1] ?? 2000;
const STORE = '/nix/store';
const CACHE_DIR = '/nix/var/nomad-driver-nix-bench';
const CACHE = join(CACHE_DIR, 'paths.json');
const ADD_BATCH = 250;

const run = (file: string, args: readonly string[]): string =>
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

/** The MAX synthetic store paths, added when the cached list is missing or any is invalid. */
function syntheticPaths(): { paths: string[]; addedMs: number } {
  if (existsSync(CACHE)) {
    const cached = JSON.parse(readFileSync(CACHE, 'utf8')) as string[];
    if (cached.length === MAX && run('nix-store', ['--check-validity', '--print-invalid', ...cached]) === '') return { paths: cached, addedMs: 0 };
  }
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'view-bench-src-'));
  try {
    const sources = Array.from({ length: MAX }, (_, i) => writeSynthetic(dir, i));
    const paths: string[] = [];
    for (let i = 0; i < sources.length; i += ADD_BATCH) paths.push(...run('nix-store', ['--add', ...sources.slice(i, i + ADD_BATCH)]).split('\n'));
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(CACHE, `${JSON.stringify(paths)}\n`);
    return { paths, addedMs: performance.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const { paths, addedMs } = syntheticPaths();
  const base = statSync(tmpdir()).dev === statSync(STORE).dev ? tmpdir() : '/nix/var';
  const work = mkdtempSync(join(base, 'view-bench-'));
  try {
    const entries = run('find', paths).split('\n').length;
    console.log(
      `store view build, median of ${runs} runs (node ${process.version}); ${MAX} synthetic paths, ${entries} files/dirs/symlinks in all${addedMs > 0 ? `, added to the store in ${addedMs.toFixed(0)} ms` : ''}`,
    );
    console.log('');
    console.log('| store paths | entries | cold ensureStoreView (ms) | warm ensureStoreView (ms) | `cp -al` for reference (ms) | removeStoreView (ms) |');
    console.log('|---|---|---|---|---|---|');
    const sizes = (process.env.BENCH_VIEW_SIZES ?? SIZES.join(',')).split(',').map(Number);
    for (const size of sizes) {
      const closure = paths.slice(0, size);
      const cold: number[] = [];
      const warm: number[] = [];
      const cp: number[] = [];
      const remove: number[] = [];
      for (let r = 0; r < runs; r += 1) {
        const viewsDir = join(work, `views-${size}-${r}`);
        const view = await ensureStoreView(viewsDir, closure);
        if (!view.built) throw new Error('a cold run found a view');
        cold.push(view.durationMs);
        const again = await ensureStoreView(viewsDir, closure);
        if (again.built) throw new Error('a warm run built a view');
        warm.push(again.durationMs);
        let started = performance.now();
        await removeStoreView(viewsDir, view.key);
        remove.push(performance.now() - started);
        const cpTarget = join(work, `cp-${size}-${r}`);
        mkdirSync(cpTarget);
        started = performance.now();
        for (let i = 0; i < closure.length; i += 500) run('cp', ['-al', '-t', cpTarget, ...closure.slice(i, i + 500)]);
        cp.push(performance.now() - started);
        rmSync(cpTarget, { recursive: true, force: true });
      }
      if (size === MAX)
        reportFigure({
          figure: `cold store view, ${size} paths`,
          value: median(cold),
          unit: 'ms',
          anchor: '`cp -al` of the same paths',
          anchorValue: median(cp),
          maxRatio: 2,
        });
      const perPath = entries / MAX;
      console.log(
        `| ${size} | ~${Math.round(perPath * size)} | ${median(cold).toFixed(1)} | ${median(warm).toFixed(2)} | ${median(cp).toFixed(1)} | ${median(remove).toFixed(1)} |`,
      );
    }
    // a second closure sharing most paths with a first: B = A minus its first 100 paths plus 100 others
    const shared = MAX - 200;
    const a = paths.slice(0, shared + 100);
    const b = paths.slice(100, shared + 200);
    const sharedCold: number[] = [];
    const second: number[] = [];
    for (let r = 0; r < runs; r += 1) {
      const viewsDir = join(work, `views-shared-${r}`);
      const first = await ensureStoreView(viewsDir, a);
      sharedCold.push(first.durationMs);
      const next = await ensureStoreView(viewsDir, b);
      second.push(next.durationMs);
      await removeStoreView(viewsDir, first.key);
      await removeStoreView(viewsDir, next.key);
    }
    console.log('');
    console.log(
      `second closure of ${b.length} paths sharing ${shared} with a first of ${a.length} (100 new): ${median(second).toFixed(1)} ms after the first's ${median(sharedCold).toFixed(1)} ms`,
    );
    reportFigure({
      figure: `store view of a 2nd closure: ${shared} of ${b.length} paths shared, 100 new`,
      value: median(second),
      unit: 'ms',
      anchor: `cold view of the first closure (${a.length} paths)`,
      anchorValue: median(sharedCold),
      maxRatio: 0.15,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();

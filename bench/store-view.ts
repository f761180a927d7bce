/**
 * Prints how long a store view takes to build (cold) and to find again (warm) for closures of
 * 10 to 2000 store paths, next to `cp -al` of the same paths for reference.
 *   npx tsc -p . && node dist/bench/store-view.js [runs]
 *
 * The store paths are bench/synthetic-store.ts's (added to the store once, then cached).
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ensureStoreView, removeStoreView } from '../src/nix/store-view.js';
import { reportFigure } from './figures.js';
import { run, syntheticPaths } from './synthetic-store.js';

const SIZES = [10, 100, 1000, 2000] as const;
const MAX = SIZES[SIZES.length - 1] ?? 2000;
const STORE = '/nix/store';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const { paths, addedMs } = syntheticPaths(MAX);
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

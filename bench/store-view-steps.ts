/**
 * Where a second closure's store view spends its time (issue 16, item 5), and what the
 * candidate designs would cost instead. The case is bench/store-view.ts's: a first closure A
 * of 1900 synthetic paths, then B = A minus its first 100 paths plus 100 others. Per run:
 *   - A's cold view (the anchor);
 *   - B's view as today, split into steps on warm caches: walking the store (readdir and lstat),
 *     mkdir, link, symlink, chmod+utimes of the directories; and ensureStoreView(B) whole;
 *   - overlay candidate: a delta directory with hardlink trees of B's 100 new paths plus a
 *     whiteout (char device 0/0) for each of A's 100 paths that B lacks, to be mounted as
 *     `overlay lowerdir=<delta>:<A's view>`; and bwrap's warm start (as nobody) over that
 *     overlay, mounted in a private mount namespace, next to a plain view;
 *   - rename candidate: B built from a *released* A by renaming A's 1800 shared entries into
 *     B's directory and hardlinking the 100 new ones.
 * Needs root (mount, mknod, setpriv), bwrap, unshare and the store on the file system of
 * /nix/var.
 *   npx tsc -p . && node dist/bench/store-view-steps.js [runs]
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { chmod, link, lstat, mkdir, readdir, readlink, rename, symlink, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { hardlinkTrees } from '../src/host/hardlink-tree.js';
import { ensureStoreView } from '../src/nix/store-view.js';
import { median } from './figures.js';
import { syntheticPaths } from './synthetic-store.js';

const MAX = 2000;
const NEW = 100;
const STARTS = 20;

interface Entry {
  readonly source: string;
  readonly relative: string;
  readonly kind: 'directory' | 'file' | 'symlink';
  readonly mode: number;
  readonly atime: Date;
  readonly mtime: Date;
}

/** Runs `task` on every item with `width` at a time. */
async function eachLimited<T>(items: readonly T[], task: (item: T) => Promise<void>, width = 16): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < items.length; i = next++) await task(items[i] as T);
  };
  await Promise.all(Array.from({ length: width }, worker));
}

/** The entries of the store trees `sources` (what the copy has to read). */
async function walk(sources: readonly string[]): Promise<Entry[]> {
  const entries: Entry[] = [];
  const visit = async (source: string, relative: string): Promise<void> => {
    const info = await lstat(source);
    const kind = info.isDirectory() ? 'directory' : info.isSymbolicLink() ? 'symlink' : 'file';
    entries.push({ source, relative, kind, mode: info.mode & 0o7777, atime: info.atime, mtime: info.mtime });
    if (kind === 'directory') for (const name of await readdir(source)) await visit(join(source, name), join(relative, name));
  };
  await eachLimited(sources, (source) => visit(source, basename(source)));
  return entries;
}

/** Times each step of a hardlink copy of `sources` into the new directory `target`. */
async function steps(sources: readonly string[], target: string): Promise<Record<string, number>> {
  const timed = async (step: () => Promise<unknown>): Promise<number> => {
    const started = performance.now();
    await step();
    return performance.now() - started;
  };
  let entries: Entry[] = [];
  const walkMs = await timed(async () => {
    entries = await walk(sources);
  });
  const dirs = entries.filter((e) => e.kind === 'directory').sort((x, y) => x.relative.split('/').length - y.relative.split('/').length);
  await mkdir(target);
  const mkdirMs = await timed(async () => {
    for (const depth of [...new Set(dirs.map((d) => d.relative.split('/').length))]) {
      await eachLimited(
        dirs.filter((d) => d.relative.split('/').length === depth),
        (d) => mkdir(join(target, d.relative), { mode: 0o700 }),
      );
    }
  });
  const linkMs = await timed(() =>
    eachLimited(
      entries.filter((e) => e.kind === 'file'),
      (f) => link(f.source, join(target, f.relative)),
    ),
  );
  const symlinkMs = await timed(() =>
    eachLimited(
      entries.filter((e) => e.kind === 'symlink'),
      async (s) => symlink(await readlink(s.source), join(target, s.relative)),
    ),
  );
  const attrMs = await timed(() =>
    eachLimited(dirs, async (d) => {
      await chmod(join(target, d.relative), d.mode);
      await utimes(join(target, d.relative), d.atime, d.mtime);
    }),
  );
  return { walkMs, mkdirMs, linkMs, symlinkMs, attrMs };
}

/** A shell function body printing bwrap's mean start (µs) over STARTS runs of `true` as nobody, /nix/store bound from its $1. */
function bwrapStartScript(): string {
  const bwrap =
    'setpriv --reuid 65534 --regid 65534 --clear-groups bwrap --unshare-all --die-with-parent --ro-bind "$1" /nix/store --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev /bin/true || exit 1';
  return `set -e; s=$(date +%s%N); i=0; while [ $i -lt ${STARTS} ]; do ${bwrap}; i=$((i+1)); done; e=$(date +%s%N); echo $(( (e - s) / ${STARTS} / 1000 ))`;
}

/** bwrap's mean start over the plain view `view` and over `overlay lowerdir=<delta>:<base>` (µs each). */
function bwrapStarts(view: string, delta: string, base: string, merged: string): { plainUs: number; overlayUs: number } {
  const script = [
    `start() { ${bwrapStartScript()}; }`,
    'mount -t overlay overlay -o "ro,lowerdir=$2:$3" "$4"',
    'plain=$(start "$1"); overlay=$(start "$4"); umount "$4"',
    'echo "$plain $overlay"',
  ].join('\n');
  const out = execFileSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', view, delta, base, merged], {
    encoding: 'utf8',
  }).trim();
  const [plainUs, overlayUs] = out.split(' ').map(Number);
  return { plainUs: plainUs ?? Number.NaN, overlayUs: overlayUs ?? Number.NaN };
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const { paths } = syntheticPaths(MAX);
  const a = paths.slice(0, MAX - NEW);
  const b = paths.slice(NEW, MAX);
  const inA = new Set(a);
  const inB = new Set(b);
  const fresh = b.filter((p) => !inA.has(p));
  const gone = a.filter((p) => !inB.has(p));
  const figures: Record<string, number[]> = {};
  const note = (name: string, value: number): void => {
    figures[name] = [...(figures[name] ?? []), value];
  };
  for (let r = 0; r < runs; r += 1) {
    const work = mkdtempSync('/nix/var/view-steps-');
    chmodSync(work, 0o755); // bwrap runs as nobody and must reach the views
    try {
      const viewA = await ensureStoreView(join(work, 'views'), a);
      note('A: cold view (anchor)', viewA.durationMs);
      for (const [step, ms] of Object.entries(await steps(b, join(work, 'steps-b')))) note(`B as today, step: ${step}`, ms);
      const viewB = await ensureStoreView(join(work, 'views'), b);
      note('B as today: ensureStoreView', viewB.durationMs);

      let started = performance.now();
      const delta = join(work, 'delta-b');
      mkdirSync(delta);
      await hardlinkTrees(fresh, delta);
      execFileSync('sh', ['-c', 'for n; do mknod "$n" c 0 0; done', 'sh', ...gone.map((p) => join(delta, basename(p)))]);
      note(`overlay: delta (${fresh.length} new trees + ${gone.length} whiteouts)`, performance.now() - started);
      const merged = join(work, 'merged');
      mkdirSync(merged);
      const starts = bwrapStarts(viewB.path, delta, viewA.path, merged);
      note('bwrap warm start over the plain view of B', starts.plainUs / 1000);
      note('bwrap warm start over the overlay of B', starts.overlayUs / 1000);

      started = performance.now();
      const reused = join(work, 'reused-b');
      mkdirSync(reused);
      await eachLimited(
        b.filter((p) => inA.has(p)),
        (p) => rename(join(viewA.path, basename(p)), join(reused, basename(p))),
      );
      await hardlinkTrees(fresh, reused);
      note(`rename: B from a released A (${b.length - fresh.length} renames + ${fresh.length} new trees)`, performance.now() - started);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const anchor = median(figures['A: cold view (anchor)'] ?? []);
  console.log(`second closure B (${b.length} paths, ${fresh.length} new) after A (${a.length} paths): median of ${runs} runs`);
  console.log('');
  console.log('| what | ms | × A cold |');
  console.log('|---|---|---|');
  for (const [name, values] of Object.entries(figures)) {
    const value = median(values);
    console.log(`| ${name} | ${value.toFixed(1)} | ${name.startsWith('bwrap') ? '' : (value / anchor).toFixed(2)} |`);
  }
}

await main();

/**
 * Start latency of a task against closure size, next to raw bubblewrap in the same run.
 *
 *   npm run build && node dist/bench/start-latency.js [sizes…]      (root; default 10 100 1000 2000)
 *
 * For each size N it builds (once; they are reused) a synthetic closure of exactly N store
 * paths from busybox and prints:
 *   - raw bwrap, one --ro-bind per store path (the naive closure-only root), running `true`;
 *   - raw bwrap with one --ro-bind of the driver's store view;
 *   - the driver, cold: StartTask of a closure never seen (Nix queried, store view built);
 *   - the driver, warm: StartTask of a known closure whose view exists (another task holds it),
 * each "StartTask (or spawn) until `true` has run and exited", median of several runs, plus the
 * number of entries `ls /nix/store` shows inside the task (must be N).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import { NO_SUBSTITUTERS, busyboxPath, nixString } from '../test/support/nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from '../test/support/plugin-process.js';

const packr = new Packr({ useRecords: false });
const CACHE = '/nix/var/nomad-driver-nix-bench';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** N-2 leaf paths + a main path referencing them + busybox = a closure of exactly N paths. */
function syntheticClosure(n: number): { main: string; closure: string[] } {
  mkdirSync(CACHE, { recursive: true });
  const record = join(CACHE, `closure-${n}.json`);
  if (existsSync(record)) {
    const saved = JSON.parse(readFileSync(record, 'utf8')) as { main: string; closure: string[] };
    if (saved.closure.every((p) => existsSync(p))) return saved;
  }
  const busybox = busyboxPath();
  const work = mkdtempSync(join(tmpdir(), 'start-bench-'));
  const leafDirs: string[] = [];
  for (let i = 0; i < n - 2; i += 1) {
    const dir = join(work, `leaf-${n}-${i}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'data'), `synthetic store path ${i} of a ${n}-path closure\n`);
    leafDirs.push(dir);
  }
  const leaves: string[] = [];
  for (let i = 0; i < leafDirs.length; i += 400) {
    leaves.push(...execFileSync('nix-store', ['--add', ...leafDirs.slice(i, i + 400)], { encoding: 'utf8' }).trim().split('\n').filter((l) => l !== ''));
  }
  rmSync(work, { recursive: true, force: true });
  const chunks: string[][] = [];
  for (let i = 0; i < leaves.length; i += 500) chunks.push(leaves.slice(i, i + 500));
  const refs = chunks.map((c, i) => `refs${i} = map builtins.storePath [ ${c.map(nixString).join(' ')} ];`).join('\n');
  const script = `mkdir -p $out/bin; ln -s $bb/bin/true $out/bin/true; ln -s $bb/bin/sh $out/bin/sh; for r in ${chunks.map((_, i) => `$refs${i}`).join(' ')}; do echo $r; done > $out/refs`;
  // busybox with string context (builtins.storePath), so the output's references include it
  const expr = `let bb = builtins.storePath ${nixString(busybox)}; in derivation {
    name = "start-bench-${n}";
    system = builtins.currentSystem;
    builder = "\${bb}/bin/sh";
    args = [ "-c" ${nixString(script)} ];
    inherit bb;
    PATH = "\${bb}/bin";
    ${refs}
  }`;
  const main = execFileSync('nix-build', ['--no-out-link', ...NO_SUBSTITUTERS, '-E', expr], { encoding: 'utf8', maxBuffer: 1 << 26 }).trim().split('\n').pop() ?? '';
  const closure = execFileSync('nix-store', ['--query', '--requisites', main], { encoding: 'utf8', maxBuffer: 1 << 26 }).trim().split('\n');
  if (closure.length !== n) throw new Error(`synthetic closure has ${closure.length} paths, wanted ${n}`);
  writeFileSync(record, JSON.stringify({ main, closure }));
  return { main, closure };
}

function rawBwrap(args: string[], runs: number, asUser?: number): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i += 1) {
    const t0 = performance.now();
    const result = spawnSync('bwrap', args, { stdio: 'ignore', ...(asUser === undefined ? {} : { uid: asUser, gid: asUser }) });
    times.push(performance.now() - t0);
    if (result.status !== 0) throw new Error(`bwrap exited ${result.status}`);
  }
  return median(times);
}

interface Sandbox {
  readonly allocDir: string;
  readonly stateDir: string;
  readonly gcRoots: string;
}

function sandboxDirs(): Sandbox {
  const allocDir = mkdtempSync(join(tmpdir(), 'start-bench-alloc-'));
  chmodSync(allocDir, 0o711);
  for (const dir of ['alloc', 'main/local', 'main/secrets']) {
    mkdirSync(join(allocDir, dir), { recursive: true });
    chmodSync(join(allocDir, dir), 0o777);
  }
  for (const f of ['stdout', 'stderr']) writeFileSync(join(allocDir, f), '', { mode: 0o666 });
  const stateDir = mkdtempSync('/var/lib/start-bench-state-');
  const gcRoots = mkdtempSync('/nix/var/nix/gcroots/start-bench-');
  return { allocDir, stateDir, gcRoots };
}

let taskCounter = 0;
function taskConfig(sandbox: Sandbox, storePath: string, command: string, args: string[]) {
  taskCounter += 1;
  const allocId = `00000000-0000-0000-0000-${String(taskCounter).padStart(12, '0')}`;
  return {
    id: `${allocId}/main/bench${taskCounter}`,
    name: 'main',
    alloc_id: allocId,
    alloc_dir: sandbox.allocDir,
    stdout_path: join(sandbox.allocDir, 'stdout'),
    stderr_path: join(sandbox.allocDir, 'stderr'),
    env: { NOMAD_TASK_NAME: 'main' },
    msgpack_driver_config: packr.pack({ args, command, flake: null, packages: [], store_path: storePath, work_dir: '' }),
  };
}

async function startAndWait(plugin: RunningPlugin, task: ReturnType<typeof taskConfig>): Promise<number> {
  const t0 = performance.now();
  await call(plugin.clients.driver, 'StartTask', { task });
  await call(plugin.clients.driver, 'WaitTask', { task_id: task.id }, 60_000);
  const elapsed = performance.now() - t0;
  await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
  return elapsed;
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 2);
  const rows: string[] = [];
  const sandbox = sandboxDirs();
  const plugin = await startPlugin();
  try {
    await call(plugin.clients.base, 'SetConfig', {
      msgpack_config: packr.pack({ allow_root: null, gc_roots_dir: sandbox.gcRoots, log_level: process.env.BENCH_LOG_LEVEL ?? 'warn', nix_bin: null, nix_options: ['substituters ='], runtime: null, state_dir: sandbox.stateDir }),
    });
    for (const n of sizes.length > 0 ? sizes : [10, 100, 1000, 2000]) {
      const { main, closure } = syntheticClosure(n);
      const perPath = closure.flatMap((p) => ['--ro-bind', p, p]);
      const rawRuns = n >= 1000 ? 3 : 15;
      const raw = rawBwrap(['--unshare-all', ...perPath, '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`], rawRuns);

      // cold: the closure was never started by this plugin and has no view
      const cold = await startAndWait(plugin, taskConfig(sandbox, main, 'bin/true', []));
      // hold the view with a long-running task, then warm starts
      const holder = taskConfig(sandbox, main, 'bin/sh', ['-c', 'ls /nix/store | wc -l; exec sleep 600']);
      await call(plugin.clients.driver, 'StartTask', { task: holder });
      const viewDir = join(sandbox.stateDir, 'views', readdirSync(join(sandbox.stateDir, 'views')).find((v) => !v.includes('.')) ?? '');
      const rawView = rawBwrap(['--unshare-all', '--ro-bind', viewDir, '/nix/store', '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`], 15);
      // what the driver runs: bwrap started as the task user (nobody) in a user namespace
      const rawViewUser = rawBwrap(['--unshare-user', '--unshare-all', '--ro-bind', viewDir, '/nix/store', '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`], 15, 65534);
      const warm: number[] = [];
      for (let i = 0; i < 15; i += 1) warm.push(await startAndWait(plugin, taskConfig(sandbox, main, 'bin/true', [])));
      await new Promise((r) => setTimeout(r, 200));
      const listed = readFileSync(join(sandbox.allocDir, 'stdout'), 'utf8').trim().split('\n').pop();
      await call(plugin.clients.driver, 'StopTask', { task_id: holder.id, timeout: { seconds: 1 }, signal: 'SIGKILL' });
      await call(plugin.clients.driver, 'DestroyTask', { task_id: holder.id, force: true });
      const w = median(warm);
      rows.push(`| ${n} | ${raw.toFixed(1)} | ${rawView.toFixed(1)} | ${rawViewUser.toFixed(1)} | ${cold.toFixed(1)} | ${w.toFixed(1)} | ${(w / raw).toFixed(2)}x | ${(w / rawViewUser).toFixed(2)}x | ${listed} |`);
      console.error(`done: ${n} paths`);
    }
  } finally {
    if (process.env.BENCH_LOG_LEVEL !== undefined) for (const line of plugin.stderrLines) console.error(line);
    plugin.kill('SIGTERM');
    await plugin.exited;
    rmSync(sandbox.allocDir, { recursive: true, force: true });
    rmSync(sandbox.stateDir, { recursive: true, force: true });
    rmSync(sandbox.gcRoots, { recursive: true, force: true });
  }
  console.log('StartTask (or spawn) until `true` has run and exited; medians in ms');
  console.log('| store paths | raw bwrap (root), --ro-bind per path | raw bwrap (root), one view bind | raw bwrap as nobody + userns, one view bind | driver cold | driver warm | warm / raw per-path | warm / raw as nobody | `ls /nix/store` inside |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

void main();

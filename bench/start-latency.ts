/**
 * Start latency of a task against closure size, next to raw bubblewrap and raw runc in the same run.
 *
 *   npm run build && node dist/bench/start-latency.js [sizes…]      (root; default 10 100 1000 2000)
 *
 * For each size N it builds (once; they are reused) a synthetic closure of exactly N store
 * paths from busybox and prints:
 *   - raw bwrap, one --ro-bind per store path (the naive closure-only root), running `true`;
 *   - raw bwrap with one --ro-bind of the driver's store view (as root, and as nobody in a
 *     user namespace: the "minimal bwrap");
 *   - bwrap with the driver's own arguments (bench/bwrap-anchor.ts: its argv for a task of
 *     the same closure, rendered by the driver's code, command `true`, as the task user: the
 *     "same arguments" anchor), one run after each warm start of the driver, interleaved;
 *   - the driver, cold: StartTask of a closure never seen (Nix queried, store view built);
 *   - the driver, warm: StartTask of a known closure whose view exists (another task holds it),
 * and the same with `runtime = "runc"` next to raw `runc run` (bundle from `runc spec`, host
 * network, one bind per store path / one bind of the view) and `runc run` of the driver's own
 * config.json (the holder task's, command replaced by `true`: the "same arguments" anchor),
 * each "StartTask (or spawn) until `true` has run and exited", median of several runs, plus
 * the number of entries `ls /nix/store` shows inside the task (must be N), and on stderr the
 * warm starts' StartTask and WaitTask medians apart. BENCH_RUNTIMES=bwrap or =runc runs one.
 *
 * Then real closures (BENCH_REAL=0 skips them): busybox (`bin/true`) next to Debian's Python
 * 3 (test/support/python-closure.ts, `bin/python3 -c pass` with PYTHONHOME: the interpreter
 * starts and imports its site module from the closure), with their store paths, files
 * (`find` entries) and bytes (`nix-store --query --size` summed), driver cold and warm per
 * runtime as above (warm: 5 starts while a task of the same closure holds its view).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NO_SUBSTITUTERS, busyboxPath, nixString } from '../test/support/nix-fixtures.js';
import { pythonClosure } from '../test/support/python-closure.js';
import { call, startPlugin, type RunningPlugin } from '../test/support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox, type TaskSandbox } from '../test/support/task-sandbox.js';
import { findExecutable } from '../src/host/which.js';
import { driverBwrapAnchor, type BwrapAnchor } from './bwrap-anchor.js';
import { reportFigure } from './figures.js';

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
    leaves.push(
      ...execFileSync('nix-store', ['--add', ...leafDirs.slice(i, i + 400)], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .filter((l) => l !== ''),
    );
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
  const main =
    execFileSync('nix-build', ['--no-out-link', ...NO_SUBSTITUTERS, '-E', expr], { encoding: 'utf8', maxBuffer: 1 << 26 })
      .trim()
      .split('\n')
      .pop() ?? '';
  const closure = execFileSync('nix-store', ['--query', '--requisites', main], { encoding: 'utf8', maxBuffer: 1 << 26 })
    .trim()
    .split('\n');
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

/** Of each startAndWait: the StartTask call, and the WaitTask after it (ms); printed to stderr per measurement. */
const splits: { start: number[]; wait: number[] } = { start: [], wait: [] };

async function startAndWait(plugin: RunningPlugin, task: ReturnType<typeof sandboxTask>): Promise<number> {
  const t0 = performance.now();
  await call(plugin.clients.driver, 'StartTask', { task });
  const t1 = performance.now();
  await call(plugin.clients.driver, 'WaitTask', { task_id: task.id }, 60_000);
  const elapsed = performance.now() - t0;
  splits.start.push(t1 - t0);
  splits.wait.push(elapsed - (t1 - t0));
  await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
  return elapsed;
}

/** `runc run` of `true` from a bundle made by `runc spec`: host network, the given binds. */
function rawRunc(mounts: { source: string; destination: string }[], main: string, runs: number): number {
  const bundle = mkdtempSync(join(tmpdir(), 'start-bench-runc-'));
  const root = mkdtempSync(join(tmpdir(), 'start-bench-runc-root-'));
  try {
    mkdirSync(join(bundle, 'rootfs'));
    execFileSync('runc', ['spec', '--bundle', bundle]);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    config.process.terminal = false;
    config.process.args = [`${main}/bin/true`];
    config.root = { path: 'rootfs', readonly: true };
    config.linux.namespaces = config.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
    config.mounts.push(...mounts.map((m) => ({ ...m, type: 'bind', options: ['rbind', 'ro'] })));
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    const times: number[] = [];
    for (let i = 0; i < runs; i += 1) {
      const t0 = performance.now();
      const result = spawnSync('runc', ['--root', root, 'run', '--bundle', bundle, `bench-${i}`], { stdio: 'ignore' });
      times.push(performance.now() - t0);
      if (result.status !== 0) throw new Error(`runc run exited ${result.status}`);
    }
    return median(times);
  } finally {
    rmSync(bundle, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * `runc run` of `true` with the driver's own OCI config, as the anchor of "same arguments":
 * the config.json of the task running in `tasksDir` (the holder), its command replaced by
 * `true` (after tini's `--`), in a cgroup of its own per run.
 */
function rawRuncDriverConfig(tasksDir: string, main: string, runs: number): number {
  const [holder = ''] = readdirSync(tasksDir);
  const config = JSON.parse(readFileSync(join(tasksDir, holder, 'config.json'), 'utf8'));
  const args: string[] = config.process.args;
  config.process.args = [...args.slice(0, args.indexOf('--') + 1), `${main}/bin/true`];
  const bundle = mkdtempSync(join(tmpdir(), 'start-bench-runc-same-'));
  const root = mkdtempSync(join(tmpdir(), 'start-bench-runc-root-'));
  try {
    execFileSync('cp', ['-a', join(tasksDir, holder, 'rootfs'), join(bundle, 'rootfs')]);
    const times: number[] = [];
    for (let i = 0; i < runs; i += 1) {
      config.linux.cgroupsPath = `/nomad-driver-nix-bench/raw-${process.pid}-${i}`;
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
      const t0 = performance.now();
      const result = spawnSync('runc', ['--root', root, 'run', '--bundle', bundle, `bench-same-${i}`], { stdio: 'ignore' });
      times.push(performance.now() - t0);
      if (result.status !== 0) throw new Error(`runc run (driver's config) exited ${result.status}`);
    }
    return median(times);
  } finally {
    rmSync(bundle, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
    // runc removed each run's cgroup; their parent is the bench's
    for (const hierarchy of ['', ...readdirSync('/sys/fs/cgroup')]) {
      try {
        rmdirSync(join('/sys/fs/cgroup', hierarchy, 'nomad-driver-nix-bench'));
      } catch {
        // not there
      }
    }
  }
}

interface DriverFigures {
  readonly cold: number;
  readonly warm: number;
  /** Median of the interleaved anchor's runs (NaN without one). */
  readonly anchor: number;
  readonly listed: string | undefined;
  readonly viewDir: string;
}

/**
 * Cold start, then warm starts while a holder task keeps the closure's view; `during` runs
 * while the view exists, and `interleaved` (made while the holder is the only task) runs once
 * right after each warm start, so both see the same load.
 */
async function measureDriver(
  plugin: RunningPlugin,
  sandbox: TaskSandbox,
  main: string,
  during: (viewDir: string) => void,
  interleaved?: (holderEnv: Readonly<Record<string, string>>) => BwrapAnchor,
): Promise<DriverFigures> {
  // cold: the closure was never started by this plugin and has no view
  const cold = await startAndWait(plugin, sandboxTask(sandbox, main, 'bin/true', []));
  // hold the view with a long-running task, then warm starts
  const holder = sandboxTask(sandbox, main, 'bin/sh', ['-c', 'ls /nix/store | wc -l; exec sleep 600']);
  await call(plugin.clients.driver, 'StartTask', { task: holder });
  const warm: number[] = [];
  const anchorTimes: number[] = [];
  let viewDir = '';
  let listed: string | undefined;
  try {
    viewDir = join(sandbox.stateDir, 'views', readdirSync(join(sandbox.stateDir, 'views')).find((v) => !v.includes('.')) ?? '');
    during(viewDir);
    const anchor = interleaved?.(holder.env);
    if (anchor !== undefined) console.error(`same-arguments anchor: bwrap ${anchor.argv.join(' ')}; on fd 5: ${anchor.options.join(' ')}`);
    splits.start.length = 0;
    splits.wait.length = 0;
    try {
      for (let i = 0; i < 15; i += 1) {
        warm.push(await startAndWait(plugin, sandboxTask(sandbox, main, 'bin/true', [])));
        if (anchor !== undefined) anchorTimes.push(anchor.run());
      }
    } finally {
      anchor?.remove();
    }
    console.error(`warm medians: StartTask ${median(splits.start).toFixed(1)} ms, then WaitTask ${median(splits.wait).toFixed(1)} ms`);
    await new Promise((r) => setTimeout(r, 200));
    listed = readFileSync(join(sandbox.allocDir, 'stdout'), 'utf8').trim().split('\n').pop();
  } finally {
    // the holder outlives the plugin otherwise (tasks do): stop it whatever failed
    await call(plugin.clients.driver, 'StopTask', { task_id: holder.id, timeout: { seconds: 1 }, signal: 'SIGKILL' });
    await call(plugin.clients.driver, 'DestroyTask', { task_id: holder.id, force: true });
  }
  return { cold, warm: median(warm), anchor: median(anchorTimes), listed, viewDir };
}

/** A real closure: how to run it once (`command`) and how to hold its view (`hold`). */
interface RealClosure {
  readonly name: string;
  readonly path: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly hold: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

function realClosures(): RealClosure[] {
  const busybox = busyboxPath();
  const closures: RealClosure[] = [{ name: 'busybox', path: busybox, command: 'bin/true', args: [], hold: ['bin/sleep', '600'], env: {} }];
  const python = pythonClosure().path;
  closures.push({
    name: 'python3 (Debian)',
    path: python,
    command: 'bin/python3',
    args: ['-c', 'pass'],
    hold: ['bin/python3', '-c', 'import time; time.sleep(600)'],
    env: { PYTHONHOME: python },
  });
  return closures;
}

/** Store paths, `find` entries and bytes of `path`'s closure. */
function closureFigures(path: string): { paths: number; files: number; bytes: number } {
  const requisites = execFileSync('nix-store', ['--query', '--requisites', path], { encoding: 'utf8' }).trim().split('\n');
  const sizes = execFileSync('nix-store', ['--query', '--size', ...requisites], { encoding: 'utf8' })
    .trim()
    .split('\n');
  const files = execFileSync('find', requisites, { encoding: 'utf8', maxBuffer: 1 << 26 })
    .trim()
    .split('\n').length;
  return { paths: requisites.length, files, bytes: sizes.reduce((sum, s) => sum + Number(s), 0) };
}

async function measureReal(plugin: RunningPlugin, sandbox: TaskSandbox, c: RealClosure): Promise<{ cold: number; warm: number }> {
  const task = (command: string, args: readonly string[]) => {
    const t = sandboxTask(sandbox, c.path, command, args);
    return { ...t, env: { ...t.env, ...c.env } };
  };
  const cold = await startAndWait(plugin, task(c.command, c.args));
  const [holdCommand = '', ...holdArgs] = c.hold;
  const holder = task(holdCommand, holdArgs);
  await call(plugin.clients.driver, 'StartTask', { task: holder });
  const warm: number[] = [];
  for (let i = 0; i < 5; i += 1) warm.push(await startAndWait(plugin, task(c.command, c.args)));
  await call(plugin.clients.driver, 'StopTask', { task_id: holder.id, timeout: { seconds: 1 }, signal: 'SIGKILL' });
  await call(plugin.clients.driver, 'DestroyTask', { task_id: holder.id, force: true });
  return { cold, warm: median(warm) };
}

async function configure(plugin: RunningPlugin, sandbox: TaskSandbox, runtime: 'bwrap' | 'runc'): Promise<void> {
  await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
}

async function main(): Promise<void> {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((n) => n > 2);
  const runtimes = (process.env.BENCH_RUNTIMES ?? 'bwrap,runc').split(',');
  const bwrapRows: string[] = [];
  const runcRows: string[] = [];
  const realRows: string[] = [];
  const bwrapPath = findExecutable('bwrap', { pathEnv: process.env.PATH ?? '' }) ?? 'bwrap';
  const plugin = await startPlugin();
  try {
    for (const n of sizes.length > 0 ? sizes : [10, 100, 1000, 2000]) {
      const { main, closure } = syntheticClosure(n);
      const rawRuns = n >= 1000 ? 3 : 15;
      if (runtimes.includes('bwrap')) {
        const sandbox = taskSandbox();
        try {
          await configure(plugin, sandbox, 'bwrap');
          const perPath = closure.flatMap((p) => ['--ro-bind', p, p]);
          const raw = rawBwrap(['--unshare-all', ...perPath, '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`], rawRuns);
          let rawView = 0;
          let rawViewUser = 0;
          const d = await measureDriver(
            plugin,
            sandbox,
            main,
            (viewDir) => {
              rawView = rawBwrap(['--unshare-all', '--ro-bind', viewDir, '/nix/store', '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`], 15);
              // the minimal bwrap: started as the task user (nobody) in a user namespace, one view bind
              rawViewUser = rawBwrap(
                ['--unshare-user', '--unshare-all', '--ro-bind', viewDir, '/nix/store', '--proc', '/proc', '--dev', '/dev', '--', `${main}/bin/true`],
                15,
                65534,
              );
            },
            (env) => driverBwrapAnchor(bwrapPath, { stateRoot: sandbox.stateDir, allocDir: sandbox.allocDir, taskName: 'main', env, main, closure }),
          );
          reportFigure({
            figure: `warm start, bwrap, ${n} paths`,
            value: d.warm,
            unit: 'ms',
            anchor: "bwrap with the driver's arguments, as the task user",
            anchorValue: d.anchor,
            maxRatio: 1.2,
          });
          reportFigure({
            figure: `warm start, bwrap, ${n} paths, against a minimal bwrap`,
            value: d.warm,
            unit: 'ms',
            anchor: 'minimal bwrap: as nobody + userns, one view bind',
            anchorValue: rawViewUser,
            maxRatio: 1.2,
          });
          bwrapRows.push(
            `| ${n} | ${raw.toFixed(1)} | ${rawView.toFixed(1)} | ${rawViewUser.toFixed(1)} | ${d.anchor.toFixed(1)} | ${d.cold.toFixed(1)} | ${d.warm.toFixed(1)} | ${(d.warm / raw).toFixed(2)}x | ${(d.warm / rawViewUser).toFixed(2)}x | ${(d.warm / d.anchor).toFixed(2)}x | ${d.listed} |`,
          );
        } finally {
          sandbox.remove();
        }
      }
      if (runtimes.includes('runc')) {
        const sandbox = taskSandbox();
        try {
          await configure(plugin, sandbox, 'runc');
          const raw = rawRunc(
            closure.map((p) => ({ source: p, destination: p })),
            main,
            rawRuns,
          );
          let rawView = 0;
          let rawSame = 0;
          const d = await measureDriver(plugin, sandbox, main, (viewDir) => {
            rawView = rawRunc([{ source: viewDir, destination: '/nix/store' }], main, 15);
            rawSame = rawRuncDriverConfig(join(sandbox.stateDir, 'tasks'), main, 15);
          });
          reportFigure({
            figure: `warm start, runc, ${n} paths, against the driver's own config`,
            value: d.warm,
            unit: 'ms',
            anchor: "raw `runc run` of the driver's config.json",
            anchorValue: rawSame,
            maxRatio: 1.2,
          });
          reportFigure({
            figure: `warm start, runc, ${n} paths`,
            value: d.warm,
            unit: 'ms',
            anchor: 'raw `runc run`, one view bind',
            anchorValue: rawView,
            maxRatio: 1.2,
          });
          runcRows.push(
            `| ${n} | ${raw.toFixed(1)} | ${rawView.toFixed(1)} | ${rawSame.toFixed(1)} | ${d.cold.toFixed(1)} | ${d.warm.toFixed(1)} | ${(d.warm / raw).toFixed(2)}x | ${(d.warm / rawView).toFixed(2)}x | ${(d.warm / rawSame).toFixed(2)}x | ${d.listed} |`,
          );
        } finally {
          sandbox.remove();
        }
      }
      console.error(`done: ${n} paths`);
    }
    if (process.env.BENCH_REAL !== '0')
      for (const c of realClosures()) {
        const f = closureFigures(c.path);
        const cells: string[] = [];
        for (const runtime of ['bwrap', 'runc'] as const) {
          if (!runtimes.includes(runtime)) {
            cells.push('–', '–');
            continue;
          }
          const sandbox = taskSandbox();
          try {
            await configure(plugin, sandbox, runtime);
            const d = await measureReal(plugin, sandbox, c);
            cells.push(d.cold.toFixed(1), d.warm.toFixed(1));
          } finally {
            sandbox.remove();
          }
        }
        realRows.push(`| ${c.name} | ${f.paths} | ${f.files} | ${(f.bytes / 1e6).toFixed(1)} MB | ${cells.join(' | ')} |`);
        console.error(`done: ${c.name}`);
      }
  } finally {
    if (process.env.BENCH_LOG_LEVEL !== undefined) for (const line of plugin.stderrLines) console.error(line);
    plugin.kill('SIGTERM');
    await plugin.exited;
  }
  console.log('StartTask (or spawn) until `true` has run and exited; medians in ms');
  if (bwrapRows.length > 0) {
    console.log('\nruntime = "bwrap"\n');
    console.log(
      "| store paths | raw bwrap (root), --ro-bind per path | raw bwrap (root), one view bind | minimal bwrap: as nobody + userns, one view bind | bwrap with the driver's arguments (same arguments) | driver cold | driver warm | warm / raw per-path | warm / minimal bwrap | warm / same arguments | `ls /nix/store` inside |",
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const row of bwrapRows) console.log(row);
  }
  if (runcRows.length > 0) {
    console.log('\nruntime = "runc"\n');
    console.log(
      "| store paths | raw `runc run`, bind per path | raw `runc run`, one view bind | raw `runc run`, the driver's config.json | driver cold | driver warm | warm / raw per-path | warm / raw view | warm / raw driver's config | `ls /nix/store` inside |",
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const row of runcRows) console.log(row);
  }
  if (realRows.length > 0) {
    console.log('\nreal closures: StartTask until the command has run and exited, medians in ms\n');
    console.log('| closure | store paths | files | bytes | bwrap cold | bwrap warm | runc cold | runc warm |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const row of realRows) console.log(row);
  }
}

void main();

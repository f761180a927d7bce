/**
 * Stats overhead (issue 5): plugin CPU and RSS with 50 tasks reporting every second.
 *
 *   npm run build && npm run bench:stats        (root; node dist/bench/stats-overhead.js)
 *
 * For each runtime in BENCH_RUNTIMES (default "bwrap,runc") a fresh plugin process is started
 * and configured with that runtime, then, over windows of BENCH_WINDOW_S seconds (default 30):
 *   - 0 tasks, no streams (the idle plugin, for reference);
 *   - BENCH_TASKS (default 50) running tasks (busybox `sh -c 'exec sleep 3600'`, one alloc id
 *     each, all in one sandbox alloc dir), no TaskStats streams;
 *   - the same tasks with one TaskStats stream each at collection_interval 1 s, measured after
 *     BENCH_WARMUP_S (default 5) seconds of streaming.
 * Plugin CPU is utime+stime of /proc/<plugin pid>/stat over the window ÷ wall time, in % of one
 * core; RSS is VmRSS of /proc/<pid>/status at the start and end of the window (and the max of
 * 1 s samples). Samples/s counts the TaskStats messages that arrived in the window; for them it
 * also gives the spacing of consecutive sample timestamps per stream (should be ~1000 ms), the
 * gaps over 1.5 s, the delivery delay (arrival − sample timestamp) and a check of the values
 * (memory rss/usage non-zero, measured_fields set, id matching the stream's task).
 * Side figures: the time to start the tasks one after another (StartTask each), and to stop
 * and destroy them. At the end every task is stopped and destroyed and the bench checks that
 * nothing is left: state_dir/tasks empty, no process whose command line names the sandbox, no
 * task process (pids read from the task cgroups) alive, no task cgroup left.
 */
import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { DRIVER_CGROUP_PARENT } from '../src/cgroup/placement.js';
import type { TaskStatsResponse__Output } from '../src/gen/hashicorp/nomad/plugins/drivers/proto/TaskStatsResponse.js';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from '../test/support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, stateKey, taskSandbox, type TaskSandbox } from '../test/support/task-sandbox.js';
import { reportFigure } from './figures.js';

const TASKS = Number(process.env.BENCH_TASKS ?? 50);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S ?? 30);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 5);
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const MiB = (kib: number) => (kib / 1024).toFixed(1);

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

interface ProcSample {
  readonly at: number; // performance.now() ms
  readonly ticks: number; // utime + stime
  readonly childTicks: number; // cutime + cstime (reaped children)
  readonly threads: number;
  readonly rssKiB: number;
}

function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields after "(comm)": [0] = field 3 (state) … [11] utime (14), [12] stime, [13] cutime, [14] cstime, [17] num_threads (20)
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    at: performance.now(),
    ticks: (f[11] ?? NaN) + (f[12] ?? NaN),
    childTicks: (f[13] ?? NaN) + (f[14] ?? NaN),
    threads: f[17] ?? NaN,
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN),
  };
}

interface WindowFigures {
  readonly start: ProcSample;
  readonly end: ProcSample;
  readonly cpuPercent: number;
  readonly childCpuPercent: number;
  readonly rssMaxKiB: number;
  readonly benchCpuPercent: number;
  readonly loadavg: string;
  readonly startWall: number; // Date.now() at the window's start
  readonly endWall: number;
}

/** Watches the plugin for `seconds`: CPU ticks at both ends, RSS every second. */
async function measureWindow(plugin: RunningPlugin, seconds: number): Promise<WindowFigures> {
  const pid = plugin.child.pid ?? 0;
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const benchCpu0 = process.cpuUsage();
  const startWall = Date.now();
  const start = procSample(pid);
  let rssMaxKiB = start.rssKiB;
  const deadline = start.at + seconds * 1000;
  while (performance.now() < deadline) {
    assertAlive(plugin);
    await sleep(Math.min(1000, Math.max(0, deadline - performance.now())));
    rssMaxKiB = Math.max(rssMaxKiB, procSample(pid).rssKiB);
  }
  const end = procSample(pid);
  const endWall = Date.now();
  const benchCpu = process.cpuUsage(benchCpu0);
  const wallS = (end.at - start.at) / 1000;
  return {
    start,
    end,
    cpuPercent: ((end.ticks - start.ticks) / CLK_TCK / wallS) * 100,
    childCpuPercent: ((end.childTicks - start.childTicks) / CLK_TCK / wallS) * 100,
    rssMaxKiB,
    benchCpuPercent: ((benchCpu.user + benchCpu.system) / 1e6 / wallS) * 100,
    loadavg,
    startWall,
    endWall,
  };
}

function assertAlive(plugin: RunningPlugin): void {
  if (plugin.child.exitCode !== null || plugin.child.signalCode !== null) {
    throw new Error(`plugin exited (${plugin.child.exitCode ?? plugin.child.signalCode}); stderr tail:\n${plugin.stderrLines.slice(-30).join('\n')}`);
  }
}

/** One received TaskStats message, reduced to what the bench checks. */
interface Received {
  readonly arrival: number; // Date.now()
  readonly timestamp: number; // sample timestamp, ms since epoch
  readonly idOk: boolean;
  readonly memRss: number;
  readonly memUsage: number;
  readonly memFields: readonly string[];
  readonly cpuPercent: number;
  readonly cpuTotalTicks: number;
  readonly cpuFields: readonly string[];
}

interface StatsStream {
  readonly taskId: string;
  readonly call: ClientReadableStream<TaskStatsResponse__Output>;
  readonly samples: Received[];
  error: ServiceError | undefined;
  ended: boolean;
  readonly closed: Promise<void>;
  first: TaskStatsResponse__Output | undefined;
}

function openStream(plugin: RunningPlugin, taskId: string): StatsStream {
  const stream = plugin.clients.driver.TaskStats({ task_id: taskId, collection_interval: { seconds: 1, nanos: 0 } });
  let resolveClosed: () => void = () => undefined;
  const s: StatsStream = {
    taskId,
    call: stream,
    samples: [],
    error: undefined,
    ended: false,
    closed: new Promise<void>((r) => {
      resolveClosed = r;
    }),
    first: undefined,
  };
  stream.on('data', (message: TaskStatsResponse__Output) => {
    const arrival = Date.now();
    s.first ??= message;
    const stats = message.stats;
    const ts = stats?.timestamp;
    const mem = stats?.agg_resource_usage?.memory;
    const cpu = stats?.agg_resource_usage?.cpu;
    s.samples.push({
      arrival,
      timestamp: ts === null || ts === undefined ? NaN : Number(ts.seconds) * 1000 + ts.nanos / 1e6,
      idOk: stats?.id === taskId,
      memRss: Number(mem?.rss ?? 0),
      memUsage: Number(mem?.usage ?? 0),
      memFields: (mem?.measured_fields ?? []).map(String),
      cpuPercent: Number(cpu?.percent ?? NaN),
      cpuTotalTicks: Number(cpu?.total_ticks ?? NaN),
      cpuFields: (cpu?.measured_fields ?? []).map(String),
    });
  });
  stream.on('error', (error: ServiceError) => {
    s.error = error;
    resolveClosed();
  });
  stream.on('end', () => {
    s.ended = true;
    resolveClosed();
  });
  return s;
}

interface StreamFigures {
  readonly samplesPerS: number;
  readonly inWindow: number;
  readonly spacing: readonly number[]; // ms between consecutive sample timestamps of a stream
  readonly delays: readonly number[]; // arrival − timestamp, ms
  readonly gapsOver1500: number;
  readonly maxGap: number;
  readonly streamsWithoutSamples: number;
  readonly badId: number;
  readonly zeroMemory: number; // rss and usage both 0
  readonly zeroRss: number;
  readonly noMemFields: number;
  readonly noCpuFields: number;
  readonly memRssKiB: readonly number[];
  readonly memUsageKiB: readonly number[];
  readonly cpuPercent: readonly number[];
  readonly erroredOrEnded: string[];
}

function streamFigures(streams: readonly StatsStream[], w: WindowFigures): StreamFigures {
  const spacing: number[] = [];
  const delays: number[] = [];
  const memRssKiB: number[] = [];
  const memUsageKiB: number[] = [];
  const cpuPercent: number[] = [];
  let inWindow = 0;
  let gapsOver1500 = 0;
  let maxGap = 0;
  let streamsWithoutSamples = 0;
  let badId = 0;
  let zeroMemory = 0;
  let zeroRss = 0;
  let noMemFields = 0;
  let noCpuFields = 0;
  const erroredOrEnded: string[] = [];
  for (const s of streams) {
    if (s.error !== undefined || s.ended)
      erroredOrEnded.push(`${s.taskId}: ${s.error === undefined ? 'ended' : `${grpcStatus[s.error.code]} ${s.error.details}`}`);
    const within = s.samples.filter((r) => r.arrival >= w.startWall && r.arrival <= w.endWall);
    if (within.length === 0) streamsWithoutSamples += 1;
    inWindow += within.length;
    for (const r of within) {
      const i = s.samples.indexOf(r);
      const previous = s.samples[i - 1];
      if (previous !== undefined) {
        const gap = r.timestamp - previous.timestamp;
        spacing.push(gap);
        maxGap = Math.max(maxGap, gap);
        if (gap > 1500) gapsOver1500 += 1;
      }
      delays.push(r.arrival - r.timestamp);
      if (!r.idOk) badId += 1;
      if (r.memRss === 0 && r.memUsage === 0) zeroMemory += 1;
      if (r.memRss === 0) zeroRss += 1;
      if (r.memFields.length === 0) noMemFields += 1;
      if (r.cpuFields.length === 0) noCpuFields += 1;
      memRssKiB.push(r.memRss / 1024);
      memUsageKiB.push(r.memUsage / 1024);
      cpuPercent.push(r.cpuPercent);
    }
    // a stream that went quiet for the whole tail of the window is a gap too
    const last = within.at(-1);
    if (last !== undefined && w.endWall - last.timestamp > 1500) {
      gapsOver1500 += 1;
      maxGap = Math.max(maxGap, w.endWall - last.timestamp);
    }
  }
  return {
    samplesPerS: inWindow / ((w.endWall - w.startWall) / 1000),
    inWindow,
    spacing,
    delays,
    gapsOver1500,
    maxGap,
    streamsWithoutSamples,
    badId,
    zeroMemory,
    zeroRss,
    noMemFields,
    noCpuFields,
    memRssKiB,
    memUsageKiB,
    cpuPercent,
    erroredOrEnded,
  };
}

/**
 * The task cgroup directories of `taskIds` that exist: the driver's own (no Nomad here),
 * <root>/<controller>/nomad-driver-nix/<state key> (v1) or <root>/nomad-driver-nix/<key> (v2).
 */
function taskCgroupDirs(taskIds: readonly string[]): string[] {
  const root = '/sys/fs/cgroup';
  const keys = taskIds.map(stateKey);
  const parents = [join(root, DRIVER_CGROUP_PARENT), ...readdirSync(root).map((c) => join(root, c, DRIVER_CGROUP_PARENT))];
  return parents.flatMap((parent) => keys.map((key) => join(parent, key))).filter((dir) => existsSync(dir));
}

function cgroupPids(dirs: readonly string[]): Set<number> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line !== '') pids.add(Number(line));
    } catch {
      // removed meanwhile, or a v1 controller without cgroup.procs
    }
  }
  return pids;
}

/** Processes whose command line mentions one of `needles`. */
function processesMentioning(needles: readonly string[]): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue;
    }
    if (needles.some((n) => cmdline.includes(n))) found.push(`${entry}: ${cmdline.slice(0, 200)}`);
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `pid state ppid=… comm` of a process (zombies are "alive" for kill(pid, 0)). */
function describe(pid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '?';
    return `${pid} ${field('State').split(' ')[0]} ppid=${field('PPid')} ${field('Name')}`;
  } catch {
    return `${pid} gone`;
  }
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

type Task = ReturnType<typeof sandboxTask>;

interface RuntimeResult {
  readonly runtime: string;
  readonly lines: string[];
  readonly problems: string[];
}

async function benchRuntime(runtime: 'bwrap' | 'runc', busybox: string): Promise<RuntimeResult> {
  const lines: string[] = [];
  const problems: string[] = [];
  const sandbox: TaskSandbox = taskSandbox();
  // BENCH_PLUGIN_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=DIR"): node options of the plugin only
  const plugin = await startPlugin({ nodeArgs: (process.env.BENCH_PLUGIN_NODE_ARGS ?? '').split(' ').filter((a) => a !== '') });
  const pid = plugin.child.pid ?? 0;
  const tasks: Task[] = [];
  const startedIds: string[] = [];
  const streams: StatsStream[] = [];
  const rows: string[] = [];
  const row = (taskCount: number, streamCount: number, w: WindowFigures, samplesPerS: string) =>
    rows.push(`| ${taskCount} | ${streamCount} | ${w.cpuPercent.toFixed(2)} | ${MiB(w.start.rssKiB)} | ${MiB(w.end.rssKiB)} | ${samplesPerS} |`);
  const windowNote = (label: string, w: WindowFigures) =>
    lines.push(
      `- ${label}: RSS max ${MiB(w.rssMaxKiB)} MiB, threads ${w.start.threads}→${w.end.threads}, reaped-children CPU ${w.childCpuPercent.toFixed(2)} %, bench process CPU ${w.benchCpuPercent.toFixed(1)} %, loadavg at start ${w.loadavg}`,
    );
  try {
    await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
    console.error(`[${runtime}] plugin pid ${pid}; idle window ${WINDOW_S} s`);
    const idle = await measureWindow(plugin, WINDOW_S);
    row(0, 0, idle, '–');

    console.error(`[${runtime}] starting ${TASKS} tasks`);
    const startTimes: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < TASKS; i += 1) {
      const task = sandboxTask(sandbox, busybox, 'bin/sh', ['-c', 'exec sleep 3600']);
      const ts = performance.now();
      await call(plugin.clients.driver, 'StartTask', { task }, 60_000);
      startTimes.push(performance.now() - ts);
      tasks.push(task);
      startedIds.push(task.id);
    }
    const startAll = performance.now() - t0;
    const afterStart = procSample(pid);
    lines.push(
      `- start ${TASKS} tasks sequentially: ${(startAll / 1000).toFixed(2)} s total; StartTask p50 ${percentile(startTimes, 50).toFixed(0)} ms, p90 ${percentile(startTimes, 90).toFixed(0)} ms, max ${Math.max(...startTimes).toFixed(0)} ms (first ${startTimes[0]?.toFixed(0)} ms); plugin RSS after ${MiB(afterStart.rssKiB)} MiB`,
    );

    // every task still running? (InspectTask)
    const notRunning: string[] = [];
    for (const task of tasks) {
      const r = await call<unknown, { task?: { state?: string } }>(plugin.clients.driver, 'InspectTask', { task_id: task.id });
      if (r.task?.state !== 'RUNNING') notRunning.push(`${task.id}: ${r.task?.state}`);
    }
    if (notRunning.length > 0) problems.push(`tasks not RUNNING before the windows: ${notRunning.join(', ')}`);
    const taskPids = cgroupPids(taskCgroupDirs(tasks.map((t) => t.id)));
    if (taskPids.size < tasks.length) problems.push(`only ${taskPids.size} task processes found in the task cgroups of ${tasks.length} tasks`);

    await sleep(2000);
    console.error(`[${runtime}] baseline window ${WINDOW_S} s (${TASKS} tasks, no streams)`);
    const baseline = await measureWindow(plugin, WINDOW_S);
    row(TASKS, 0, baseline, '–');

    console.error(`[${runtime}] opening ${TASKS} TaskStats streams, ${WARMUP_S} s warm-up, then ${WINDOW_S} s window`);
    for (const task of tasks) streams.push(openStream(plugin, task.id));
    await sleep(WARMUP_S * 1000);
    const withStreams = await measureWindow(plugin, WINDOW_S);
    const sf = streamFigures(streams, withStreams);
    row(TASKS, streams.length, withStreams, sf.samplesPerS.toFixed(1));
    reportFigure({
      figure: `stats CPU, ${TASKS} tasks × 1 s streams (${runtime})`,
      value: withStreams.cpuPercent,
      unit: '% of a core',
      anchor: 'one core',
      anchorValue: 100,
      ...(TASKS === 50 ? { maxValue: 2 } : {}),
    });
    reportFigure({
      figure: `plugin RSS, ${TASKS} tasks + ${TASKS} streams (${runtime})`,
      value: withStreams.rssMaxKiB / 1024,
      unit: 'MiB',
      anchor: 'same plugin idle',
      anchorValue: idle.start.rssKiB / 1024,
      ...(TASKS === 200 ? { maxValue: 120 } : {}),
    });

    lines.push(
      `- samples in the ${WINDOW_S} s window: ${sf.inWindow} (${sf.samplesPerS.toFixed(2)}/s, expected ${TASKS}/s); streams without a sample: ${sf.streamsWithoutSamples}`,
    );
    lines.push(
      `- timestamp spacing per stream (ms): p50 ${percentile(sf.spacing, 50).toFixed(1)}, p99 ${percentile(sf.spacing, 99).toFixed(1)}, max ${sf.maxGap.toFixed(1)}; gaps > 1.5 s: ${sf.gapsOver1500}`,
    );
    lines.push(
      `- delivery delay, arrival − sample timestamp (ms): p50 ${percentile(sf.delays, 50).toFixed(1)}, p99 ${percentile(sf.delays, 99).toFixed(1)}, max ${Math.max(...sf.delays).toFixed(1)}`,
    );
    lines.push(
      `- sample values: memory.rss KiB min ${Math.min(...sf.memRssKiB).toFixed(0)} / p50 ${percentile(sf.memRssKiB, 50).toFixed(0)} / max ${Math.max(...sf.memRssKiB).toFixed(0)}; memory.usage KiB min ${Math.min(...sf.memUsageKiB).toFixed(0)} / p50 ${percentile(sf.memUsageKiB, 50).toFixed(0)}; cpu.percent p50 ${percentile(sf.cpuPercent, 50).toFixed(3)} max ${Math.max(...sf.cpuPercent).toFixed(3)}; rss=0: ${sf.zeroRss}, rss=usage=0: ${sf.zeroMemory}, wrong id: ${sf.badId}, no memory measured_fields: ${sf.noMemFields}, no cpu measured_fields: ${sf.noCpuFields}`,
    );
    const first = streams[0]?.first?.stats?.agg_resource_usage;
    if (first !== undefined && first !== null)
      lines.push(`- one sample (first of stream 0): memory ${JSON.stringify(first.memory)}, cpu ${JSON.stringify(first.cpu)}`);
    windowNote('idle window', idle);
    windowNote('baseline window', baseline);
    windowNote('streams window', withStreams);
    if (sf.streamsWithoutSamples > 0 || sf.gapsOver1500 > 0)
      problems.push(`stream delivery: ${sf.streamsWithoutSamples} streams without samples, ${sf.gapsOver1500} gaps > 1.5 s`);
    if (sf.zeroMemory > 0 || sf.zeroRss > 0) problems.push(`memory zeros: rss=0 in ${sf.zeroRss} samples, rss=usage=0 in ${sf.zeroMemory}`);
    if (sf.badId > 0 || sf.noMemFields > 0 || sf.noCpuFields > 0)
      problems.push(`sample fields: wrong id ${sf.badId}, no memory measured_fields ${sf.noMemFields}, no cpu measured_fields ${sf.noCpuFields}`);
    if (sf.erroredOrEnded.length > 0)
      problems.push(
        `streams closed before cancel: ${sf.erroredOrEnded.slice(0, 5).join('; ')}${sf.erroredOrEnded.length > 5 ? ` (+${sf.erroredOrEnded.length - 5})` : ''}`,
      );

    // cancel the streams; each must close with CANCELLED
    for (const s of streams) s.call.cancel();
    await Promise.race([Promise.all(streams.map((s) => s.closed)), sleep(10_000)]);
    const notCancelled = streams.filter((s) => s.error?.code !== grpcStatus.CANCELLED);
    if (notCancelled.length > 0) problems.push(`${notCancelled.length} streams did not close with CANCELLED after cancel()`);

    // stop and destroy every task
    const stopT0 = performance.now();
    for (const task of tasks.splice(0)) {
      await call(plugin.clients.driver, 'StopTask', { task_id: task.id, timeout: { seconds: 5 }, signal: 'SIGTERM' }, 30_000);
      await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true }, 30_000);
    }
    lines.push(`- StopTask + DestroyTask of ${TASKS} tasks sequentially: ${((performance.now() - stopT0) / 1000).toFixed(2)} s`);
    await sleep(500);
    const leftTasks = existsSync(join(sandbox.stateDir, 'tasks')) ? readdirSync(join(sandbox.stateDir, 'tasks')) : [];
    const leftViews = existsSync(join(sandbox.stateDir, 'views')) ? readdirSync(join(sandbox.stateDir, 'views')) : [];
    const leftProcs = processesMentioning([sandbox.allocDir, sandbox.stateDir]);
    let leftPids = [...taskPids].filter(alive);
    if (leftPids.length > 0) {
      lines.push(
        `- task pids still there 0.5 s after the last DestroyTask: ${leftPids.length}, e.g. ${leftPids.slice(0, 3).map(describe).join(', ')}; their states: ${JSON.stringify(countBy(leftPids.map((p) => describe(p).split(' ')[1] ?? '?')))}`,
      );
      await sleep(5000);
      // an exited sandbox init whose parent (the bwrap monitor) exited first is reparented to
      // the host's pid 1 and is a zombie until that reaps it: dead, so not left over
      leftPids = [...taskPids].filter(alive);
      lines.push(`- 5 s later: ${leftPids.length} (${leftPids.slice(0, 3).map(describe).join(', ')})`);
      leftPids = leftPids.filter((p) => describe(p).split(' ')[1] !== 'Z');
    }
    const leftCgroups = taskCgroupDirs(startedIds);
    lines.push(
      `- after cleanup: state_dir/tasks ${leftTasks.length} entries, state_dir/views ${leftViews.length}, processes naming the sandbox ${leftProcs.length}, task pids alive (not zombies) ${leftPids.length} of ${taskPids.size}, task cgroups left ${leftCgroups.length}`,
    );
    if (leftTasks.length > 0 || leftViews.length > 0 || leftProcs.length > 0 || leftPids.length > 0 || leftCgroups.length > 0) {
      problems.push(
        `left after cleanup: tasks [${leftTasks.join(', ')}], views [${leftViews.join(', ')}], processes [${leftProcs.join('; ')}], pids [${leftPids.join(', ')}], cgroups [${leftCgroups.join(', ')}]`,
      );
    }
    assertAlive(plugin);
  } catch (error) {
    problems.push(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    for (const s of streams) s.call.cancel();
    // after a failure: force-destroy what is left (best effort)
    for (const task of tasks) {
      await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true }, 30_000).catch((e: unknown) =>
        problems.push(`cleanup DestroyTask ${task.id}: ${String(e)}`),
      );
    }
    if (process.env.BENCH_LOG_LEVEL !== undefined) for (const line of plugin.stderrLines) console.error(line);
    plugin.kill('SIGTERM');
    const code = await plugin.exited;
    if (code !== 0 && code !== 'SIGTERM') problems.push(`plugin exit after SIGTERM: ${code}; stderr tail:\n${plugin.stderrLines.slice(-20).join('\n')}`);
    sandbox.remove();
  }
  return {
    runtime,
    lines: [`| tasks | streams | plugin CPU % | RSS start MiB | RSS end MiB | samples/s |`, `|---|---|---|---|---|---|`, ...rows, '', ...lines],
    problems,
  };
}

async function main(): Promise<void> {
  const runtimes = (process.env.BENCH_RUNTIMES ?? 'bwrap,runc').split(',').filter((r): r is 'bwrap' | 'runc' => r === 'bwrap' || r === 'runc');
  const busybox = busyboxPath();
  const results: RuntimeResult[] = [];
  for (const runtime of runtimes) results.push(await benchRuntime(runtime, busybox));
  console.log(
    `stats overhead: ${TASKS} tasks (busybox \`sh -c 'exec sleep 3600'\`), TaskStats every 1 s, ${WINDOW_S} s windows; plugin CPU in % of one core (utime+stime / wall); node ${process.version}, ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`,
  );
  for (const r of results) {
    console.log(`\nruntime = "${r.runtime}"\n`);
    for (const line of r.lines) console.log(line);
    if (r.problems.length > 0) {
      console.log('\nproblems:');
      for (const p of r.problems) console.log(`- ${p}`);
    }
  }
  if (results.some((r) => r.problems.length > 0)) process.exitCode = 1;
}

void main();

/**
 * Parses a task cgroup's accounting files into the numbers Nomad's TaskStats carry, and turns
 * two CPU samples into Nomad's percentages. Pure: the caller reads the files (see
 * STATS_FILES and task-cgroup.ts readStats) and passes their text in.
 *
 * Which file gives what, following what libcontainer reads for Nomad's exec driver
 * (opencontainers/cgroups v0.0.6 fs/{cpuacct,cpu,memory}.go and fs2/{cpu,memory}.go, used by
 * hashicorp/nomad:drivers/shared/executor/executor_linux_cgo.go handleStats):
 *
 * | value             | v1                                               | v2                          |
 * | ----------------- | ------------------------------------------------ | --------------------------- |
 * | cpu total         | cpuacct.usage (ns)                               | cpu.stat usage_usec         |
 * | cpu user / system | cpuacct.usage_user/_sys (ns), else cpuacct.stat (USER_HZ ticks) | cpu.stat user_usec / system_usec |
 * | throttling        | cpu.stat nr_throttled, throttled_time (ns)       | cpu.stat nr_throttled, throttled_usec |
 * | rss / cache       | memory.stat total_rss / total_cache              | memory.stat anon / file     |
 * | swap              | memory.stat total_swap                           | memory.swap.current         |
 * | usage / max usage | memory.usage_in_bytes / memory.max_usage_in_bytes | memory.current / memory.peak |
 * | kernel usage      | memory.kmem.usage_in_bytes / .max_usage_in_bytes | memory.stat kernel          |
 *
 * Deliberate differences from Nomad's executor:
 * - swap is swap only. libcontainer reports memory.memsw.usage_in_bytes (memory + swap) on v1
 *   and memory.swap.current + memory.current on v2 as "Swap".
 * - v1 rss/cache/swap use the hierarchical total_* keys (the task may have sub-cgroups);
 *   Nomad reads rss/cache, equal for a leaf.
 * - `measuredMemory`/`measuredCpu` name exactly the fields that were read, in Nomad's
 *   vocabulary, instead of a fixed list per version (Nomad lists Max Usage and Kernel Usage
 *   on v1 only, although v2 kernels >= 5.19 have memory.peak).
 */
import type { CgroupVersion } from './limits.js';

/** Cumulative CPU counters of the cgroup, in nanoseconds. */
export interface CpuSample {
  readonly totalNs?: number;
  readonly userNs?: number;
  readonly systemNs?: number;
  readonly throttledPeriods?: number;
  readonly throttledTimeNs?: number;
}

/** Memory in bytes at the moment of reading. */
export interface MemoryStats {
  readonly rss?: number;
  readonly cache?: number;
  readonly swap?: number;
  readonly usage?: number;
  readonly maxUsage?: number;
  readonly kernelUsage?: number;
  readonly kernelMaxUsage?: number;
}

export interface TaskCgroupStats {
  readonly cpu: CpuSample;
  readonly memory: MemoryStats;
  /** Nomad's names of the CPU fields the driver can report from these counters. */
  readonly measuredCpu: readonly string[];
  /** Nomad's names of the memory fields that were read. */
  readonly measuredMemory: readonly string[];
}

/**
 * Files to read, keyed as `statsFromFiles` expects: `<controller>/<file>` on v1 (each lives in
 * that controller's hierarchy), the bare file name on v2. Missing files are simply absent.
 */
export const STATS_FILES: Readonly<Record<CgroupVersion, readonly string[]>> = {
  v1: [
    'cpuacct/cpuacct.usage',
    'cpuacct/cpuacct.usage_user',
    'cpuacct/cpuacct.usage_sys',
    'cpuacct/cpuacct.stat',
    'cpu/cpu.stat',
    'memory/memory.stat',
    'memory/memory.usage_in_bytes',
    'memory/memory.max_usage_in_bytes',
    'memory/memory.kmem.usage_in_bytes',
    'memory/memory.kmem.max_usage_in_bytes',
  ],
  v2: ['cpu.stat', 'memory.stat', 'memory.current', 'memory.peak', 'memory.swap.current'],
};

/** USER_HZ, the unit of cpuacct.stat: 100 on every Linux ABI (libcontainer assumes the same). */
const USER_HZ = 100;
const NS_PER_TICK = 1e9 / USER_HZ;

/**
 * Parses "key value" lines (memory.stat, cpu.stat, cpuacct.stat, memory.events,
 * memory.oom_control). Values above 2^53 lose precision; lines that are not a key and a
 * whole number are skipped.
 */
export function parseKeyedValues(text: string): Map<string, number> {
  const values = new Map<string, number>();
  // by hand rather than a regex a line: v1 memory.stat has ~40 lines, read every second per task
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const space = text.indexOf(' ', start);
    if (space > start && space < end) {
      const value = text.slice(space + 1, end).trim();
      if (value !== '' && DIGITS.test(value)) values.set(text.slice(start, space), Number(value));
    }
    start = end + 1;
  }
  return values;
}

const DIGITS = /^\d+$/;

/** Parses a single-number file (memory.current, cpuacct.usage, …); undefined for "max" or junk. */
export function parseSingleValue(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

/** Parses cgroup.procs: one pid a line. */
export function parsePids(text: string): number[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

type Fields<T> = { -readonly [K in keyof T]?: T[K] };

function set<T, K extends keyof T>(target: Fields<T>, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

const times = (value: number | undefined, factor: number) => (value === undefined ? undefined : value * factor);

function v1Stats(files: ReadonlyMap<string, string>): { cpu: CpuSample; memory: MemoryStats } {
  const cpu: Fields<CpuSample> = {};
  const memory: Fields<MemoryStats> = {};
  const acct = parseKeyedValues(files.get('cpuacct/cpuacct.stat') ?? '');
  set(cpu, 'totalNs', parseSingleValue(files.get('cpuacct/cpuacct.usage')));
  set(cpu, 'userNs', parseSingleValue(files.get('cpuacct/cpuacct.usage_user')) ?? times(acct.get('user'), NS_PER_TICK));
  set(cpu, 'systemNs', parseSingleValue(files.get('cpuacct/cpuacct.usage_sys')) ?? times(acct.get('system'), NS_PER_TICK));
  const cpuStat = parseKeyedValues(files.get('cpu/cpu.stat') ?? '');
  set(cpu, 'throttledPeriods', cpuStat.get('nr_throttled'));
  set(cpu, 'throttledTimeNs', cpuStat.get('throttled_time'));
  const stat = parseKeyedValues(files.get('memory/memory.stat') ?? '');
  set(memory, 'rss', stat.get('total_rss') ?? stat.get('rss'));
  set(memory, 'cache', stat.get('total_cache') ?? stat.get('cache'));
  // present only with swap accounting (CONFIG_MEMCG_SWAP, swapaccount=1)
  set(memory, 'swap', stat.get('total_swap') ?? stat.get('swap'));
  set(memory, 'usage', parseSingleValue(files.get('memory/memory.usage_in_bytes')));
  set(memory, 'maxUsage', parseSingleValue(files.get('memory/memory.max_usage_in_bytes')));
  set(memory, 'kernelUsage', parseSingleValue(files.get('memory/memory.kmem.usage_in_bytes')));
  set(memory, 'kernelMaxUsage', parseSingleValue(files.get('memory/memory.kmem.max_usage_in_bytes')));
  return { cpu, memory };
}

function v2Stats(files: ReadonlyMap<string, string>): { cpu: CpuSample; memory: MemoryStats } {
  const cpu: Fields<CpuSample> = {};
  const memory: Fields<MemoryStats> = {};
  const cpuStat = parseKeyedValues(files.get('cpu.stat') ?? '');
  set(cpu, 'totalNs', times(cpuStat.get('usage_usec'), 1000));
  set(cpu, 'userNs', times(cpuStat.get('user_usec'), 1000));
  set(cpu, 'systemNs', times(cpuStat.get('system_usec'), 1000));
  // nr_throttled/throttled_usec appear only once the cpu controller is enabled for the cgroup
  set(cpu, 'throttledPeriods', cpuStat.get('nr_throttled'));
  set(cpu, 'throttledTimeNs', times(cpuStat.get('throttled_usec'), 1000));
  const stat = parseKeyedValues(files.get('memory.stat') ?? '');
  set(memory, 'rss', stat.get('anon'));
  set(memory, 'cache', stat.get('file'));
  set(memory, 'swap', parseSingleValue(files.get('memory.swap.current')));
  set(memory, 'usage', parseSingleValue(files.get('memory.current')));
  set(memory, 'maxUsage', parseSingleValue(files.get('memory.peak')));
  set(memory, 'kernelUsage', stat.get('kernel'));
  return { cpu, memory };
}

const MEMORY_NAMES: ReadonlyArray<[keyof MemoryStats, string]> = [
  ['rss', 'RSS'],
  ['cache', 'Cache'],
  ['swap', 'Swap'],
  ['usage', 'Usage'],
  ['maxUsage', 'Max Usage'],
  ['kernelUsage', 'Kernel Usage'],
  ['kernelMaxUsage', 'Kernel Max Usage'],
];

const CPU_NAMES: ReadonlyArray<[keyof CpuSample, string]> = [
  ['systemNs', 'System Mode'],
  ['userNs', 'User Mode'],
  ['throttledPeriods', 'Throttled Periods'],
  ['throttledTimeNs', 'Throttled Time'],
  ['totalNs', 'Percent'],
];

/** Assembles the stats from file contents keyed as in STATS_FILES. */
export function statsFromFiles(version: CgroupVersion, files: ReadonlyMap<string, string>): TaskCgroupStats {
  const { cpu, memory } = version === 'v1' ? v1Stats(files) : v2Stats(files);
  return {
    cpu,
    memory,
    measuredCpu: CPU_NAMES.filter(([key]) => cpu[key] !== undefined).map(([, name]) => name),
    measuredMemory: MEMORY_NAMES.filter(([key]) => memory[key] !== undefined).map(([, name]) => name),
  };
}

/** The node's compute, as Nomad's cpustats.Compute: total MHz over all cores, and the core count. */
export interface NodeCompute {
  readonly totalMhz: number;
  readonly cores: number;
}

/** Nomad's CpuStats values derived from two samples. */
export interface CpuUsage {
  /** Share of one core used over the interval, in percent (200 = two full cores). */
  readonly percent: number;
  readonly userPercent: number;
  readonly systemPercent: number;
  /** MHz consumed: percent of one core × MHz per core (Nomad's TotalTicks). */
  readonly totalTicks: number;
}

function percentOf(prev: number | undefined, next: number | undefined, elapsedNs: number): number {
  if (prev === undefined || next === undefined || elapsedNs <= 0 || next <= prev) return 0;
  return ((next - prev) / elapsedNs) * 100;
}

/**
 * Nomad's CPU percentages between two samples `elapsedNs` apart
 * (hashicorp/nomad:client/lib/cpustats/stats.go Tracker.Percent and TicksConsumed): CPU time
 * used over wall time × 100, so a task busy on two cores reads 200; TotalTicks scales that
 * percent of one core by the node's MHz per core. Like Nomad's tracker, the first sample
 * (no `prev`) and a counter that did not grow give 0.
 */
export function cpuUsage(prev: CpuSample | undefined, next: CpuSample, elapsedNs: number, compute: NodeCompute): CpuUsage {
  const percent = percentOf(prev?.totalNs, next.totalNs, elapsedNs);
  return {
    percent,
    userPercent: percentOf(prev?.userNs, next.userNs, elapsedNs),
    systemPercent: percentOf(prev?.systemNs, next.systemNs, elapsedNs),
    totalTicks: compute.cores > 0 ? (percent / 100) * (compute.totalMhz / compute.cores) : 0,
  };
}

/** The OOM-kill counter: memory.events `oom_kill` (v2) or memory.oom_control `oom_kill` (v1, kernel >= 4.13). */
export function parseOomKills(text: string): number | undefined {
  return parseKeyedValues(text).get('oom_kill');
}

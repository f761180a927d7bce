/**
 * Task resource limits as data: turns a validated `TaskLimits` into the cgroup interface-file
 * writes that enforce it, for cgroups v1 and v2, the way Nomad 1.11's executors do
 * (hashicorp/nomad:drivers/shared/executor/executor_universal_linux.go configureCG1/CG2 and
 * executor_linux_cgo.go configureCgroups):
 *
 * | limit                 | v1 (controller / file)            | v2 (file)                      |
 * | --------------------- | --------------------------------- | ------------------------------ |
 * | cpuShares             | cpu / cpu.shares                  | cpu.weight (converted)         |
 * | cpusetCpus            | cpuset / cpuset.cpus              | cpuset.cpus                    |
 * | memoryLimitBytes      | memory / memory.limit_in_bytes    | memory.max                     |
 * | memorySoftLimitBytes  | memory / memory.soft_limit_in_bytes | memory.low                   |
 * | pidsLimit             | pids / pids.max                   | pids.max                       |
 *
 * `nomadTaskLimits` derives `TaskLimits` from what Nomad sends in a TaskConfig, with Nomad's
 * own rules for memory_max oversubscription and cpu share clamping. Pure: no I/O.
 */
import { failure } from '../errors.js';

export type CgroupVersion = 'v1' | 'v2';

/** What a task may use. Absent fields are left as the kernel has them (a new cgroup: no limit). */
export interface TaskLimits {
  /** Relative CPU weight in v1 shares (Nomad's LinuxResources.CPUShares): 2..262144. */
  readonly cpuShares?: number;
  /** CPUs the task may run on, in the kernel's list format ("0-3,6"). */
  readonly cpusetCpus?: string;
  /** Hard memory limit: the task is OOM-killed above it. */
  readonly memoryLimitBytes?: number;
  /** Memory the kernel protects from reclaim (v2) or reclaims down to under pressure (v1). */
  readonly memorySoftLimitBytes?: number;
  /** Most processes and threads the task may have at once. */
  readonly pidsLimit?: number;
}

/** The controllers a limit is written to (v1: the hierarchy; v2: the controller owning the file). */
export type LimitController = 'cpu' | 'cpuset' | 'memory' | 'pids';

export interface CgroupWrite {
  readonly controller: LimitController;
  readonly file: string;
  readonly value: string;
}

/** Kernel range of v1 cpu.shares (kernel/sched: MIN_SHARES 2, MAX_SHARES 1 << 18). */
export const MIN_CPU_SHARES = 2;
export const MAX_CPU_SHARES = 262_144;
/** Upper bound of pids.max the kernel accepts (PID_MAX_LIMIT on 64-bit). */
export const MAX_PIDS_LIMIT = 4_194_304;
/** One page: a smaller hard limit leaves the task no memory at all. */
export const MIN_MEMORY_LIMIT_BYTES = 4096;

const WHAT = 'start task';

function invalid(field: keyof TaskLimits, rule: string, value: unknown, fix?: string): Error {
  return failure(
    WHAT,
    `field "${field}" must be ${rule}, got ${String(value)}`,
    fix === undefined ? { code: 'invalid_argument' } : { code: 'invalid_argument', fix },
  );
}

function wholeNumber(field: keyof TaskLimits, value: number, min: number, max: number, unit: string): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(field, `a whole number of ${unit} from ${min} to ${max}`, value);
  }
}

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** Why `text` is not a kernel CPU list ("0-3,6"), or undefined when it is one. */
export function cpuListProblem(text: string): string | undefined {
  if (!CPU_LIST.test(text)) return 'is not a list of CPU numbers and ranges such as "0-3,6"';
  for (const part of text.split(',')) {
    const [from, to] = part.split('-').map(Number);
    if (to !== undefined && from !== undefined && to < from) return `has the descending range "${part}"`;
  }
  return undefined;
}

/** Throws a DriverError (invalid_argument) naming the first field that is out of range. */
export function validateTaskLimits(limits: TaskLimits): void {
  const { cpuShares, cpusetCpus, memoryLimitBytes, memorySoftLimitBytes, pidsLimit } = limits;
  if (cpuShares !== undefined) wholeNumber('cpuShares', cpuShares, MIN_CPU_SHARES, MAX_CPU_SHARES, 'shares');
  if (cpusetCpus !== undefined) {
    const problem = cpuListProblem(cpusetCpus);
    if (problem !== undefined) throw failure(WHAT, `field "cpusetCpus" ${JSON.stringify(cpusetCpus)} ${problem}`, { code: 'invalid_argument' });
  }
  if (memoryLimitBytes !== undefined) wholeNumber('memoryLimitBytes', memoryLimitBytes, MIN_MEMORY_LIMIT_BYTES, Number.MAX_SAFE_INTEGER, 'bytes');
  if (memorySoftLimitBytes !== undefined) wholeNumber('memorySoftLimitBytes', memorySoftLimitBytes, 1, Number.MAX_SAFE_INTEGER, 'bytes');
  if (memoryLimitBytes !== undefined && memorySoftLimitBytes !== undefined && memorySoftLimitBytes > memoryLimitBytes) {
    throw invalid(
      'memorySoftLimitBytes',
      `at most memoryLimitBytes (${memoryLimitBytes})`,
      memorySoftLimitBytes,
      'set resources.memory to at most resources.memory_max',
    );
  }
  if (pidsLimit !== undefined) wholeNumber('pidsLimit', pidsLimit, 1, MAX_PIDS_LIMIT, 'processes');
}

/**
 * v1 cpu.shares → v2 cpu.weight, the conversion of opencontainers/cgroups v0.0.6
 * `ConvertCPUSharesToCgroupV2Value` (utils.go), which Nomad 1.11.3 (go.mod) and runc 1.4 use:
 * a quadratic in log2(shares) through (2 → 1), (1024 → 100), (262144 → 10000), so the
 * default share maps to the default weight. Older runc used the linear
 * `1 + (shares - 2) * 9999 / 262142` (1024 → 39); we follow the current one.
 */
export function cpuSharesToWeight(shares: number): number {
  if (shares <= MIN_CPU_SHARES) return 1;
  if (shares >= MAX_CPU_SHARES) return 10_000;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.ceil(10 ** exponent);
}

/** The interface-file writes that enforce `limits` on `version`; validates first. */
export function limitWrites(version: CgroupVersion, limits: TaskLimits): CgroupWrite[] {
  validateTaskLimits(limits);
  const { cpuShares, cpusetCpus, memoryLimitBytes, memorySoftLimitBytes, pidsLimit } = limits;
  const writes: CgroupWrite[] = [];
  const v1 = version === 'v1';
  // cpuset first: on v1 a reserved-core cgroup must have its cpus before a process joins it
  if (cpusetCpus !== undefined) writes.push({ controller: 'cpuset', file: 'cpuset.cpus', value: cpusetCpus });
  if (cpuShares !== undefined) {
    writes.push(
      v1
        ? { controller: 'cpu', file: 'cpu.shares', value: String(cpuShares) }
        : { controller: 'cpu', file: 'cpu.weight', value: String(cpuSharesToWeight(cpuShares)) },
    );
  }
  if (memoryLimitBytes !== undefined) {
    writes.push({ controller: 'memory', file: v1 ? 'memory.limit_in_bytes' : 'memory.max', value: String(memoryLimitBytes) });
  }
  if (memorySoftLimitBytes !== undefined) {
    // v2: memory.low (best-effort protection), as both Nomad executors and exec2 write; not
    // memory.high, which throttles the task above it
    writes.push({ controller: 'memory', file: v1 ? 'memory.soft_limit_in_bytes' : 'memory.low', value: String(memorySoftLimitBytes) });
  }
  if (pidsLimit !== undefined) writes.push({ controller: 'pids', file: 'pids.max', value: String(pidsLimit) });
  return writes;
}

/** The resource fields of a Nomad TaskConfig that decide a task's limits. */
export interface NomadResources {
  /** LinuxResources.CPUShares: the task's `cpu` in MHz (or its cores' share). */
  readonly cpuShares: number;
  /** NomadResources.Memory.MemoryMB: `resources.memory`. */
  readonly memoryMb: number;
  /** NomadResources.Memory.MemoryMaxMB: `resources.memory_max`; 0 unset, -1 no hard limit. */
  readonly memoryMaxMb?: number;
  /** LinuxResources.CpusetCpus: reserved cores ("" when the task uses shared cores). */
  readonly cpusetCpus?: string;
  /** The node's total compute in MHz; shares are rescaled when it exceeds MAX_CPU_SHARES. */
  readonly totalComputeMhz?: number;
  /** Not a Nomad resource: passed through from the task config when it has one. */
  readonly pidsLimit?: number;
}

const MIB = 1024 * 1024;

/**
 * Nomad's mapping of a task's resources to limits:
 * - memory (hashicorp/nomad:drivers/shared/executor/utils.go memoryLimits): `memory` is the
 *   hard limit; with oversubscription `memory_max` > 0 is the hard limit and `memory` the soft
 *   one; `memory_max` = -1 means no hard limit and `memory` soft.
 * - cpu (executor_linux_cgo.go clampCpuShares): shares below 2 become 2; on nodes with more
 *   than 262144 MHz in total, shares are rescaled to total × 262144 so they stay in range.
 */
export function nomadTaskLimits(resources: NomadResources): TaskLimits {
  const { cpuShares, memoryMb, memoryMaxMb = 0, cpusetCpus = '', totalComputeMhz, pidsLimit } = resources;
  let shares = Math.max(cpuShares, MIN_CPU_SHARES);
  if (totalComputeMhz !== undefined && totalComputeMhz >= MAX_CPU_SHARES) {
    shares = Math.max(Math.trunc((shares / totalComputeMhz) * MAX_CPU_SHARES), MIN_CPU_SHARES);
  }
  shares = Math.min(shares, MAX_CPU_SHARES);
  let memory: Pick<TaskLimits, 'memoryLimitBytes' | 'memorySoftLimitBytes'>;
  if (memoryMaxMb === -1) memory = { memorySoftLimitBytes: memoryMb * MIB };
  else if (memoryMaxMb > 0) memory = { memoryLimitBytes: memoryMaxMb * MIB, memorySoftLimitBytes: memoryMb * MIB };
  else memory = { memoryLimitBytes: memoryMb * MIB };
  return {
    cpuShares: shares,
    ...memory,
    ...(cpusetCpus === '' ? {} : { cpusetCpus }),
    ...(pidsLimit === undefined ? {} : { pidsLimit }),
  };
}

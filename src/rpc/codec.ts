/**
 * Domain values ⇄ protobuf messages. The only module (with the services) that knows the
 * message shapes. Pure: no I/O.
 */
import type { HclSpec } from '../config/hclspec.js';
import type { DriverCapabilities } from '../driver/capabilities.js';
import type { AgentConfig } from '../driver/driver.js';
import type { TaskEvent } from '../driver/events.js';
import type { AttributeValue, Fingerprint } from '../driver/fingerprint.js';
import type { NomadConfig__Output } from '../gen/hashicorp/nomad/plugins/base/proto/NomadConfig.js';
import type { DriverCapabilities as ProtoCapabilities } from '../gen/hashicorp/nomad/plugins/drivers/proto/DriverCapabilities.js';
import type { DriverTaskEvent } from '../gen/hashicorp/nomad/plugins/drivers/proto/DriverTaskEvent.js';
import type { FingerprintResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/FingerprintResponse.js';
import type { Spec } from '../gen/hashicorp/nomad/plugins/shared/hclspec/Spec.js';
import type { Attribute } from '../gen/hashicorp/nomad/plugins/shared/structs/Attribute.js';
import type { Timestamp } from '../gen/google/protobuf/Timestamp.js';
import type { Duration__Output } from '../gen/google/protobuf/Duration.js';
import type { TaskConfig__Output } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskConfig.js';
import type { ExitResult } from '../gen/hashicorp/nomad/plugins/drivers/proto/ExitResult.js';
import type { TaskStatus } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStatus.js';
import { decodeCtyMsgpack } from '../config/cty-msgpack.js';
import { INPUT_LIMITS, jsonDepth, limitFailure, taskFieldViolation } from '../config/input-limits.js';
import type { ExitStatus, ResourceRequest, StartRequest, TaskHandle, TaskRequest } from '../driver/task.js';
import { decodeTaskSpec } from '../driver/task-request.js';
import type { TaskUsage } from '../driver/driver.js';
import type { TaskStats } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStats.js';
import type { CPUUsage } from '../gen/hashicorp/nomad/plugins/drivers/proto/CPUUsage.js';
import type { MemoryUsage } from '../gen/hashicorp/nomad/plugins/drivers/proto/MemoryUsage.js';
import { failure, quote } from '../errors.js';

/** Our HclSpec has exactly the message's shape (oneof `block` plus the chosen member). */
export function toProtoSpec(spec: HclSpec): Spec {
  return spec as unknown as Spec;
}

export function toProtoAttribute(value: AttributeValue): Attribute {
  switch (value.kind) {
    case 'string':
      return { string_val: value.value };
    case 'int':
      return { int_val: value.value };
    case 'bool':
      return { bool_val: value.value };
  }
}

const HEALTH = { undetected: 'UNDETECTED', unhealthy: 'UNHEALTHY', healthy: 'HEALTHY' } as const;

export function toFingerprintResponse(fingerprint: Fingerprint): FingerprintResponse {
  const attributes: Record<string, Attribute> = {};
  for (const [key, value] of Object.entries(fingerprint.attributes)) attributes[key] = toProtoAttribute(value);
  return {
    attributes,
    health: HEALTH[fingerprint.health],
    health_description: fingerprint.description,
  };
}

export function toProtoCapabilities(caps: DriverCapabilities): ProtoCapabilities {
  return {
    send_signals: caps.sendSignals,
    exec: caps.exec,
    fs_isolation: caps.fsIsolation,
    network_isolation_modes: [...caps.networkIsolationModes],
    must_create_network: caps.mustCreateNetwork,
    mount_configs: caps.mountConfigs,
    disable_log_collection: caps.disableLogCollection,
    dynamic_workload_users: caps.dynamicWorkloadUsers,
  };
}

/** SetConfig's nomad_config, when present (absent on the agent's validation launch). */
export function fromNomadConfig(config: NomadConfig__Output | null | undefined): AgentConfig | undefined {
  const driver = config?.driver;
  if (driver === null || driver === undefined) return undefined;
  return { clientMinPort: driver.ClientMinPort, clientMaxPort: driver.ClientMaxPort };
}

export function toTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function toDriverTaskEvent(event: TaskEvent): DriverTaskEvent {
  return {
    task_id: event.taskId,
    alloc_id: event.allocId,
    task_name: event.taskName,
    timestamp: toTimestamp(event.timestamp),
    message: event.message,
    annotations: { ...event.annotations },
  };
}

/**
 * TaskConfig → the driver's TaskRequest, its fields within INPUT_LIMITS. The task's config
 * block is decoded from cty msgpack for the limits check only (StartTask's typed block comes
 * from fromProtoStartTask); RecoverTask's handle may come without it (`withDriverConfig:
 * false`): recovery never reads it.
 */
export function fromProtoTaskConfig(task: TaskConfig__Output | null | undefined, options: { withDriverConfig?: boolean } = {}): TaskRequest {
  return decodeTask(task, options.withDriverConfig === false ? 'recover task' : 'start task').request;
}

/**
 * StartTask's TaskConfig → the driver's StartRequest: the task, and its config block decoded
 * once, here, into typed options (schema) and what to realise (cross-field rules:
 * driver/task-request.ts decodeTaskSpec). Throws an `invalid_argument` DriverError naming the
 * field, its value and the fix; Nomad shows it in `nomad alloc status`.
 */
export function fromProtoStartTask(task: TaskConfig__Output | null | undefined): StartRequest {
  const { request, driverConfig } = decodeTask(task, 'start task');
  return { ...request, ...decodeTaskSpec(driverConfig) };
}

function decodeTask(task: TaskConfig__Output | null | undefined, what: 'start task' | 'recover task'): { request: TaskRequest; driverConfig: unknown } {
  if (task === null || task === undefined) {
    throw failure(what, 'the request has no task', {
      code: 'invalid_argument',
      fix: 'use a Nomad client of version 1.8 or newer: it sends the task with the request',
    });
  }
  const dns = task.dns;
  const driverConfig = what === 'recover task' ? undefined : decodeCtyMsgpack(task.msgpack_driver_config ?? new Uint8Array(), 'task config');
  checkTaskLimits(task, driverConfig, what);
  const request: TaskRequest = {
    id: task.id,
    name: task.name,
    allocId: task.alloc_id,
    jobName: task.job_name,
    taskGroupName: task.task_group_name,
    namespace: task.namespace,
    nodeId: task.node_id,
    nodeName: task.node_name,
    env: { ...task.env },
    user: task.user,
    allocDir: task.alloc_dir,
    stdoutPath: task.stdout_path,
    stderrPath: task.stderr_path,
    mounts: task.mounts.map((m) => ({ taskPath: m.task_path, hostPath: m.host_path, readOnly: m.readonly, propagationMode: m.propagation_mode })),
    devices: task.devices.map((d) => ({ taskPath: d.task_path, hostPath: d.host_path, permissions: d.cgroup_permissions })),
    networkNamespace: task.network_isolation_spec?.mode === 'GROUP' && task.network_isolation_spec.path !== '' ? task.network_isolation_spec.path : undefined,
    dns:
      dns === null || dns === undefined || (dns.servers.length === 0 && dns.searches.length === 0 && dns.options.length === 0)
        ? undefined
        : { servers: [...dns.servers], searches: [...dns.searches], options: [...dns.options] },
    resources: fromProtoResources(task.resources),
  };
  return { request, driverConfig };
}

/**
 * The task's fields within INPUT_LIMITS (config/input-limits.ts), before anything uses them;
 * an `invalid_argument` DriverError naming the first field over its limit otherwise. The
 * decoded config's command-line fields are checked here too: its strings and lists are
 * bounded by the msgpack scan, the paths and the whole command line here.
 */
function checkTaskLimits(task: TaskConfig__Output, driverConfig: unknown, what: string): void {
  const config = (typeof driverConfig === 'object' && driverConfig !== null ? driverConfig : {}) as Record<string, unknown>;
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  const list = (value: unknown) => (Array.isArray(value) ? value : []);
  const dns = task.dns;
  const violation = taskFieldViolation({
    names: {
      id: task.id,
      name: task.name,
      alloc_id: task.alloc_id,
      job_name: task.job_name,
      task_group_name: task.task_group_name,
      namespace: task.namespace,
      user: task.user,
    },
    lists: {
      mounts: task.mounts,
      devices: task.devices,
      'dns.servers': dns?.servers ?? [],
      'dns.searches': dns?.searches ?? [],
      'dns.options': dns?.options ?? [],
    },
    paths: {
      alloc_dir: task.alloc_dir,
      stdout_path: task.stdout_path,
      stderr_path: task.stderr_path,
      'network_isolation_spec.path': task.network_isolation_spec?.path ?? '',
      'mounts.task_path': task.mounts.map((m) => m.task_path),
      'mounts.host_path': task.mounts.map((m) => m.host_path),
      'devices.task_path': task.devices.map((d) => d.task_path),
      'devices.host_path': task.devices.map((d) => d.host_path),
      'dns.servers': dns?.servers ?? [],
      'dns.searches': dns?.searches ?? [],
      'dns.options': dns?.options ?? [],
      'config.command': text(config.command),
      'config.flake': text(config.flake),
      'config.store_path': text(config.store_path),
      'config.work_dir': text(config.work_dir),
      'config.packages': list(config.packages).map(text),
    },
    env: task.env,
    args: list(config.args),
  });
  if (violation !== undefined) throw limitFailure(what, violation);
  // strings that reach paths, argv or env cannot hold NUL (the kernel's string terminator)
  const strings: [string, unknown][] = [
    ...Object.entries({
      id: task.id,
      name: task.name,
      alloc_id: task.alloc_id,
      user: task.user,
      alloc_dir: task.alloc_dir,
      stdout_path: task.stdout_path,
      stderr_path: task.stderr_path,
    }),
    ...task.mounts.flatMap((m, i): [string, unknown][] => [
      [`mounts[${i}].task_path`, m.task_path],
      [`mounts[${i}].host_path`, m.host_path],
    ]),
    ...task.devices.flatMap((d, i): [string, unknown][] => [
      [`devices[${i}].task_path`, d.task_path],
      [`devices[${i}].host_path`, d.host_path],
    ]),
    ...Object.entries(task.env).flatMap(([key, value]): [string, unknown][] => [
      [`env key ${quote(key)}`, key],
      [`env.${key}`, value],
    ]),
    ...['command', 'flake', 'store_path', 'work_dir'].map((key): [string, unknown] => [`config.${key}`, config[key]]),
    ...list(config.args).map((arg, i): [string, unknown] => [`config.args[${i}]`, arg]),
    ...list(config.packages).map((p, i): [string, unknown] => [`config.packages[${i}]`, p]),
  ];
  for (const [field, value] of strings) {
    if (typeof value === 'string' && value.includes('\0')) {
      throw failure(what, `${field.length > 80 ? `${field.slice(0, 80)}…` : field} contains a NUL character`, {
        code: 'invalid_argument',
        fix: 'remove the NUL character (\\0) from it',
      });
    }
  }
  // the task's name is its directory in the alloc dir
  if (task.name === '' || task.name === '.' || task.name === '..' || task.name.includes('/')) {
    throw failure(what, `name ${quote(task.name)} is not a single path segment`, {
      code: 'invalid_argument',
      fix: 'name the task with one path segment (no "/", not "." or ".."): it is the task\'s directory in the allocation',
    });
  }
}

/**
 * RecoverTask's driver_state within its limits (size, JSON nesting) before the persisted-task
 * decoder reads it; an `invalid_argument` DriverError otherwise.
 */
export function checkDriverStateLimits(driverState: Uint8Array): void {
  if (driverState.length > INPUT_LIMITS.driverStateBytes) {
    throw limitFailure('recover task', { field: 'driver_state', size: driverState.length, limit: INPUT_LIMITS.driverStateBytes, unit: 'bytes' });
  }
  const depth = jsonDepth(Buffer.from(driverState.buffer, driverState.byteOffset, driverState.byteLength).toString('utf8'), INPUT_LIMITS.depth);
  if (depth > INPUT_LIMITS.depth) throw limitFailure('recover task', { field: 'driver_state', size: depth, limit: INPUT_LIMITS.depth, unit: 'levels' });
}

/** TaskConfig.Resources → what the driver limits the task to; undefined when Nomad sent none. */
function fromProtoResources(resources: TaskConfig__Output['resources']): ResourceRequest | undefined {
  if (resources === null || resources === undefined) return undefined;
  const linux = resources.linux_resources;
  const allocated = resources.allocated_resources;
  const memoryMb = Number(allocated?.memory?.memory_mb ?? 0) || Math.floor(Number(linux?.memory_limit_bytes ?? 0) / (1024 * 1024));
  return {
    cpuShares: Number(linux?.cpu_shares ?? 0) || Number(allocated?.cpu?.cpu_shares ?? 0),
    memoryMb,
    memoryMaxMb: Number(allocated?.memory?.memory_max_mb ?? 0),
    cpusetCpus: linux?.cpuset_cpus ?? '',
    cpusetCgroupPath: linux?.cpuset_cgroup ?? '',
  };
}

/** google.protobuf.Duration → milliseconds. */
export function durationMs(duration: Duration__Output | null | undefined, fallbackMs: number): number {
  if (duration === null || duration === undefined) return fallbackMs;
  return Number(duration.seconds) * 1000 + Math.floor(duration.nanos / 1_000_000);
}

export function toExitResult(status: ExitStatus | undefined): ExitResult {
  return { exit_code: status?.exitCode ?? 0, signal: status?.signal ?? 0, oom_killed: status?.oomKilled ?? false };
}

/** The exit message Nomad shows with a Terminated event; empty for an ordinary exit. */
export function exitMessage(status: ExitStatus): string {
  return status.oomKilled ? 'OOM Killed: the task used more memory than its limit; raise resources.memory (or memory_max)' : '';
}

/** Go's zero time, which Nomad's client reads as "not set" (a nil timestamp fails conversion). */
export const ZERO_TIME: Timestamp = { seconds: -62135596800, nanos: 0 };

export function toTaskStatus(handle: TaskHandle): TaskStatus {
  return {
    id: handle.request.id,
    name: handle.request.name,
    state: handle.state === 'running' ? 'RUNNING' : 'EXITED',
    started_at: toTimestamp(handle.launched.startedAt),
    completed_at: handle.completedAt === undefined ? ZERO_TIME : toTimestamp(handle.completedAt),
    result: toExitResult(handle.exit),
  };
}

const CPU_FIELDS: Readonly<Record<string, string>> = {
  'System Mode': 'SYSTEM_MODE',
  'User Mode': 'USER_MODE',
  'Total Ticks': 'TOTAL_TICKS',
  'Throttled Periods': 'THROTTLED_PERIODS',
  'Throttled Time': 'THROTTLED_TIME',
  Percent: 'PERCENT',
};
const MEMORY_FIELDS: Readonly<Record<string, string>> = {
  RSS: 'RSS',
  Cache: 'CACHE',
  'Max Usage': 'MAX_USAGE',
  'Kernel Usage': 'KERNEL_USAGE',
  'Kernel Max Usage': 'KERNEL_MAX_USAGE',
  Usage: 'USAGE',
  Swap: 'SWAP',
};

/**
 * One TaskStats message. Timestamp and the aggregate usage are always set (Nomad's client
 * dereferences both); measured_fields name only figures that were really read, in Nomad's
 * enum, so `nomad alloc status -stats` shows exactly those.
 */
export function toTaskStats(taskId: string, usage: TaskUsage): TaskStats {
  const { cpu, stats } = usage;
  const measuredCpu = [...stats.measuredCpu, ...(stats.measuredCpu.includes('Percent') ? ['Total Ticks'] : [])];
  const m = stats.memory;
  const u64 = (value: number | undefined) => Math.max(0, Math.round(value ?? 0));
  return {
    id: taskId,
    timestamp: toTimestamp(usage.timestamp),
    agg_resource_usage: {
      cpu: {
        system_mode: cpu.systemPercent,
        user_mode: cpu.userPercent,
        total_ticks: cpu.totalTicks,
        throttled_periods: u64(stats.cpu.throttledPeriods),
        throttled_time: u64(stats.cpu.throttledTimeNs),
        percent: cpu.percent,
        measured_fields: measuredCpu.flatMap((name) => (CPU_FIELDS[name] === undefined ? [] : [CPU_FIELDS[name]])) as NonNullable<CPUUsage['measured_fields']>,
      },
      memory: {
        rss: u64(m.rss),
        cache: u64(m.cache),
        max_usage: u64(m.maxUsage),
        kernel_usage: u64(m.kernelUsage),
        kernel_max_usage: u64(m.kernelMaxUsage),
        usage: u64(m.usage),
        swap: u64(m.swap),
        measured_fields: stats.measuredMemory.flatMap((name) => (MEMORY_FIELDS[name] === undefined ? [] : [MEMORY_FIELDS[name]])) as NonNullable<
          MemoryUsage['measured_fields']
        >,
      },
    },
    resource_usage_by_pid: {},
  };
}

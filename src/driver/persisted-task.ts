/**
 * What the driver hands Nomad as a task's `driver_state` (and keeps as task.json in the
 * task's state dir): everything RecoverTask needs to rebuild the task from nothing, after a
 * plugin crash or an agent restart. Nomad does not keep the task's `config {}` block, so
 * nothing here may depend on it. Versioned JSON; decoding validates every field and names
 * the bad one. Pure: no I/O.
 */
import { failure, quote } from '../errors.js';
import type { TaskCgroupLocation } from '../cgroup/placement.js';
import { cgroupPathProblem } from '../cgroup/placement.js';
import type { RootPlan } from '../rootfs/plan.js';
import { absolutePathProblem } from '../paths.js';

/** Version 1 (plugin 0.1.0 before recovery) held no process start times: it cannot be recovered. */
export const PERSISTED_TASK_VERSION = 2;

export interface PersistedTask {
  readonly version: typeof PERSISTED_TASK_VERSION;
  readonly taskId: string;
  /** The runtime that launched the task (recovery uses it, whatever the config says now). */
  readonly runtime: 'bwrap' | 'runc';
  /** State key: the task's dir under state_dir/tasks, GC root name, runc container id. */
  readonly key: string;
  readonly stateDir: string;
  readonly gcRootKey: string;
  readonly viewKey: string;
  readonly etcKey: string;
  /** The runtime's monitor on the host (bwrap, or the sh running `runc run`) and its start time. */
  readonly pid: number;
  readonly pidStartTime: number;
  /** The task's PID 1 on the host and its start time (guards against a reused pid). */
  readonly initPid: number;
  readonly initStartTime: number;
  readonly startedAt: string;
  readonly cgroup?: TaskCgroupLocation;
  /** The cgroup's OOM-kill counter when the task started (Nomad reuses a task's cgroup). */
  readonly oomKillsBefore: number;
  readonly user: { readonly name: string; readonly uid: number; readonly gid: number };
  /** The command's capabilities (`CAP_…`); exec'd commands get the same. */
  readonly capabilities: readonly string[];
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly plan: RootPlan;
}

const WHAT = 'recover task';

function bad(field: string, value: unknown, why: string): Error {
  return failure(WHAT, `driver_state field ${field} ${quote(typeof value === 'string' ? value : JSON.stringify(value) ?? 'undefined')} ${why}`, {
    code: 'invalid_argument',
    fix: 'the task cannot be recovered; Nomad destroys it and starts it again',
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function encodePersistedTask(task: PersistedTask): Buffer {
  return Buffer.from(JSON.stringify(task));
}

/** Parses and validates a driver_state blob for task `taskId`. */
export function decodePersistedTask(bytes: Uint8Array, taskId: string): PersistedTask {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw failure(WHAT, `driver_state is not JSON: ${(error as Error).message}`, { code: 'invalid_argument', fix: 'the task cannot be recovered; Nomad destroys it and starts it again' });
  }
  if (!isObject(value)) throw bad('(root)', value, 'is not an object');
  const v = value;
  if (v.version !== PERSISTED_TASK_VERSION) throw bad('version', v.version, `is not ${PERSISTED_TASK_VERSION} (written by another plugin version)`);
  const str = (field: string) => {
    const x = v[field];
    if (typeof x !== 'string' || x === '') throw bad(field, x, 'is not a non-empty string');
    return x;
  };
  const int = (field: string, source: Record<string, unknown> = v, min = 0) => {
    const x = source[field];
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min) throw bad(field, x, `is not a whole number of ${min} or more`);
    return x;
  };
  const path = (field: string) => {
    const x = str(field);
    const problem = absolutePathProblem(x);
    if (problem !== undefined) throw bad(field, x, problem);
    return x;
  };
  const key = (field: string) => {
    const x = str(field);
    if (!/^[A-Za-z0-9._-]+$/.test(x) || x === '.' || x === '..') throw bad(field, x, 'is not a file-name-safe key');
    return x;
  };
  if (str('taskId') !== taskId) throw bad('taskId', v.taskId, `does not belong to task ${quote(taskId)}`);
  const runtime = str('runtime');
  if (runtime !== 'bwrap' && runtime !== 'runc') throw bad('runtime', runtime, 'is not "bwrap" or "runc"');
  if (Number.isNaN(Date.parse(str('startedAt')))) throw bad('startedAt', v.startedAt, 'is not a timestamp');
  const user = v.user;
  if (!isObject(user) || typeof user.name !== 'string') throw bad('user', user, 'is not {name, uid, gid}');
  const argv = v.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw bad('argv', argv, 'is not a non-empty list of strings');
  const capabilities = v.capabilities;
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string' && /^CAP_[A-Z_]+$/.test(c))) throw bad('capabilities', capabilities, 'is not a list of CAP_ names');
  const plan = v.plan;
  if (!isObject(plan) || !Array.isArray(plan.ops)) throw bad('plan', plan, 'is not a root plan');
  let cgroup: TaskCgroupLocation | undefined;
  if (v.cgroup !== undefined) {
    const c = v.cgroup;
    if (!isObject(c) || (c.version !== 'v1' && c.version !== 'v2') || typeof c.root !== 'string' || typeof c.path !== 'string') throw bad('cgroup', c, 'is not a cgroup location');
    for (const field of ['path', 'cpusetPath'] as const) {
      const p = c[field];
      if (p === undefined) continue;
      const problem = typeof p === 'string' ? cgroupPathProblem(p) : 'is not a string';
      if (problem !== undefined) throw bad(`cgroup.${field}`, p, problem);
    }
    if (absolutePathProblem(c.root) !== undefined) throw bad('cgroup.root', c.root, 'is not an absolute path');
    cgroup = c as unknown as TaskCgroupLocation;
  }
  return {
    version: PERSISTED_TASK_VERSION,
    taskId,
    runtime,
    key: key('key'),
    stateDir: path('stateDir'),
    gcRootKey: key('gcRootKey'),
    viewKey: key('viewKey'),
    etcKey: key('etcKey'),
    pid: int('pid', v, 2),
    pidStartTime: int('pidStartTime'),
    initPid: int('initPid', v, 2),
    initStartTime: int('initStartTime'),
    startedAt: str('startedAt'),
    ...(cgroup === undefined ? {} : { cgroup }),
    oomKillsBefore: int('oomKillsBefore'),
    user: { name: user.name, uid: int('uid', user), gid: int('gid', user) },
    capabilities: capabilities as string[],
    argv: argv as string[],
    cwd: path('cwd'),
    plan: plan as unknown as RootPlan,
  };
}

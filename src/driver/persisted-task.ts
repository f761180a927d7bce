/**
 * What the driver hands Nomad as a task's `driver_state` (and keeps as task.json in the
 * task's state dir): everything RecoverTask needs to rebuild the task from nothing, after a
 * plugin crash or an agent restart. Nomad does not keep the task's `config {}` block, so
 * nothing here may depend on it. Versioned JSON; decoding validates every field and names
 * the bad one. Pure: no I/O.
 */
import { join } from 'node:path';
import { failure, quote } from '../errors.js';
import type { TaskCgroupLocation } from '../cgroup/placement.js';
import { taskCgroupProblem } from '../cgroup/placement.js';
import type { RootPlan } from '../rootfs/plan.js';
import { absolutePathProblem } from '../paths.js';
import { taskKey } from './task-key.js';

/**
 * Version 3 stores no host path of the driver's own: the state dir is derived from the
 * configured state_dir and the key, and the record names the Nomad node that started the task.
 * Version 2 (plugin 0.1.0 with recovery) stored `stateDir`; it still decodes when that is
 * exactly the derived dir. Version 1 held no process start times: it cannot be recovered.
 */
export const PERSISTED_TASK_VERSION = 3;
const PREVIOUS_VERSION = 2;

/** The grammar of store view and /etc keys (32 hex digits of a content hash). */
const CONTENT_KEY = /^[0-9a-f]{32}$/;
/** The grammar of a Nomad node id (a UUID) as the driver accepts it. */
export const NODE_ID = /^[0-9A-Za-z-]{1,64}$/;

export interface PersistedTask {
  readonly version: typeof PERSISTED_TASK_VERSION;
  readonly taskId: string;
  /** The Nomad node (TaskConfig.node_id) whose client started the task; '' when Nomad sent none. */
  readonly nodeId: string;
  /** The runtime that launched the task (recovery uses it, whatever the config says now). */
  readonly runtime: 'bwrap' | 'runc';
  /** State key: taskKey(taskId); the task's dir under state_dir/tasks, GC root name, runc container id. */
  readonly key: string;
  /** `<state_dir>/tasks/<key>`: derived when decoding, never read from the record. */
  readonly stateDir: string;
  /** Always `key`. */
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
  /** The task's cgroup: Nomad's for its alloc and task, or the driver's own (placement.ts taskCgroupProblem). */
  readonly cgroup: TaskCgroupLocation;
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
  return failure(WHAT, `driver_state field ${field} ${quote(typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined'))} ${why}`, {
    code: 'invalid_argument',
    fix: 'the task cannot be recovered; Nomad destroys it and starts it again',
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The record as stored (driver_state, task.json): without the derived state dir. */
export function storedPersistedTask(task: PersistedTask): Omit<PersistedTask, 'stateDir'> {
  const { stateDir: _derived, ...stored } = task;
  return stored;
}

export function encodePersistedTask(task: PersistedTask): Buffer {
  return Buffer.from(JSON.stringify(storedPersistedTask(task)));
}

/** `<alloc id>/<task name>/<random>` → its parts, or undefined when `taskId` is not shaped so. */
export function taskIdParts(taskId: string): { allocId: string; taskName: string } | undefined {
  const match = /^([^/\0\n]+)\/([^\0\n]+)\/([^/\0\n]+)$/.exec(taskId);
  return match === null ? undefined : { allocId: match[1] ?? '', taskName: match[2] ?? '' };
}

/** What a record is checked against: the task Nomad asks about, and the configured state_dir. */
export interface PersistedTaskExpectation {
  readonly taskId: string;
  readonly stateRoot: string;
}

/**
 * Parses and validates a driver_state blob (version 3, or 2) for task `expect.taskId`. Nothing
 * in it is trusted: every key has its grammar and must be the one the driver derives from the
 * task id, the state dir is derived from `expect.stateRoot`, the cgroup must be the task's own.
 * Throws an invalid_argument DriverError naming the field.
 */
export function decodePersistedTask(bytes: Uint8Array, expect: PersistedTaskExpectation): PersistedTask {
  const { taskId } = expect;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw failure(WHAT, `driver_state is not JSON: ${(error as Error).message}`, {
      code: 'invalid_argument',
      fix: 'the task cannot be recovered; Nomad destroys it and starts it again',
    });
  }
  if (!isObject(value)) throw bad('(root)', value, 'is not an object');
  const v = value;
  if (v.version !== PERSISTED_TASK_VERSION && v.version !== PREVIOUS_VERSION) {
    throw bad('version', v.version, `is not ${PERSISTED_TASK_VERSION} or ${PREVIOUS_VERSION} (written by another plugin version)`);
  }
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
  const contentKey = (field: string) => {
    const x = str(field);
    if (!CONTENT_KEY.test(x)) throw bad(field, x, 'is not a key of 32 hex digits');
    return x;
  };
  if (str('taskId') !== taskId) throw bad('taskId', v.taskId, `does not belong to task ${quote(taskId)}`);
  const parts = taskIdParts(taskId);
  if (parts === undefined) throw bad('taskId', taskId, 'is not <alloc id>/<task name>/<id>');
  const stateKey = key('key');
  if (stateKey !== taskKey(taskId)) throw bad('key', stateKey, `is not the task's key ${quote(taskKey(taskId))}`);
  if (key('gcRootKey') !== stateKey) throw bad('gcRootKey', v.gcRootKey, `is not the task's key ${quote(stateKey)}`);
  const stateDir = join(expect.stateRoot, 'tasks', stateKey);
  if (v.version === PREVIOUS_VERSION && path('stateDir') !== stateDir)
    throw bad('stateDir', v.stateDir, `is not the task's dir ${stateDir} under the configured state_dir`);
  if (v.version === PERSISTED_TASK_VERSION && v.stateDir !== undefined)
    throw bad('stateDir', v.stateDir, `is not stored in version ${PERSISTED_TASK_VERSION} (derived from state_dir)`);
  const nodeId = v.version === PREVIOUS_VERSION || v.nodeId === '' ? '' : str('nodeId');
  if (nodeId !== '' && !NODE_ID.test(nodeId)) throw bad('nodeId', nodeId, 'is not a Nomad node id');
  const runtime = str('runtime');
  if (runtime !== 'bwrap' && runtime !== 'runc') throw bad('runtime', runtime, 'is not "bwrap" or "runc"');
  if (Number.isNaN(Date.parse(str('startedAt')))) throw bad('startedAt', v.startedAt, 'is not a timestamp');
  const user = v.user;
  if (!isObject(user) || typeof user.name !== 'string') throw bad('user', user, 'is not {name, uid, gid}');
  const argv = v.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw bad('argv', argv, 'is not a non-empty list of strings');
  const capabilities = v.capabilities;
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string' && /^CAP_[A-Z_]+$/.test(c)))
    throw bad('capabilities', capabilities, 'is not a list of CAP_ names');
  const plan = v.plan;
  if (!isObject(plan) || !Array.isArray(plan.ops)) throw bad('plan', plan, 'is not a root plan');
  const c = v.cgroup;
  if (!isObject(c) || (c.version !== 'v1' && c.version !== 'v2') || typeof c.root !== 'string' || typeof c.path !== 'string')
    throw bad('cgroup', c, 'is not a cgroup location');
  if (c.cpusetPath !== undefined && typeof c.cpusetPath !== 'string') throw bad('cgroup.cpusetPath', c.cpusetPath, 'is not a string');
  if (c.sharedCpuset !== undefined && typeof c.sharedCpuset !== 'boolean') throw bad('cgroup.sharedCpuset', c.sharedCpuset, 'is not a bool');
  const cgroup: TaskCgroupLocation = {
    version: c.version,
    root: c.root,
    path: c.path,
    ...(c.cpusetPath === undefined ? {} : { cpusetPath: c.cpusetPath as string }),
    ...(c.sharedCpuset === undefined ? {} : { sharedCpuset: c.sharedCpuset as boolean }),
  };
  const cgroupProblem = taskCgroupProblem(cgroup, { ...parts, key: stateKey });
  if (cgroupProblem !== undefined) throw bad('cgroup', c, `${cgroupProblem} (not a cgroup of this task)`);
  return {
    version: PERSISTED_TASK_VERSION,
    taskId,
    nodeId,
    runtime,
    key: stateKey,
    stateDir,
    gcRootKey: stateKey,
    viewKey: contentKey('viewKey'),
    etcKey: contentKey('etcKey'),
    pid: int('pid', v, 2),
    pidStartTime: int('pidStartTime'),
    initPid: int('initPid', v, 2),
    initStartTime: int('initStartTime'),
    startedAt: str('startedAt'),
    cgroup,
    oomKillsBefore: int('oomKillsBefore'),
    user: { name: user.name, uid: int('uid', user), gid: int('gid', user) },
    capabilities: capabilities as string[],
    argv: argv as string[],
    cwd: path('cwd'),
    plan: plan as unknown as RootPlan,
  };
}

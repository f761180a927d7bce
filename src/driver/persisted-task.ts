/**
 * The persisted task record, in one place: built from what StartTask knows, encoded as the
 * bytes the driver hands Nomad as a task's `driver_state` (and keeps as task.json in the task's
 * state dir), decoded and validated when RecoverTask or the orphan sweep reads it back. It holds
 * everything RecoverTask needs to rebuild the task from nothing, after a plugin crash or an
 * agent restart, and nothing that nobody reads. Nomad does not keep the task's `config {}`
 * block, so nothing here may depend on it. Versioned JSON; decoding validates every field and
 * names the bad one. Pure: no I/O.
 */
import { join } from 'node:path';
import { failure, quote } from '../errors.js';
import type { TaskCgroupLocation } from '../cgroup/placement.js';
import { taskCgroupProblem } from '../cgroup/placement.js';
import { absolutePathProblem } from '../paths.js';
import type { ProcessSpec, TaskPids } from '../runtime/runtime.js';
import { taskKey } from './task-key.js';

/**
 * Version 4 stores only what the driver reads back: no root plan, no GC root key (always the
 * state key), no user name (exec'd commands get the uid and gid).
 * Version 3 stores no host path of the driver's own: the state dir is derived from the
 * configured state_dir and the key, and the record names the Nomad node that started the task.
 * Version 2 (plugin 0.1.0 with recovery) stored `stateDir`; it still decodes when that is
 * exactly the derived dir. Versions 3 and 2 still decode (tasks started before an upgrade
 * recover), their extra fields checked as before. Version 1 held no process start times: it
 * cannot be recovered.
 */
export const PERSISTED_TASK_VERSION = 4;
const DECODED_VERSIONS = [PERSISTED_TASK_VERSION, 3, 2] as const;

/** File in a task's state dir holding its record (the same bytes as its driver_state). */
export const PERSISTED_TASK_FILE = 'task.json';

/** The grammar of store view and /etc keys (32 hex digits of a content hash). */
const CONTENT_KEY = /^[0-9a-f]{32}$/;
/** The grammar of a Nomad node id (a UUID) as the driver accepts it. */
export const NODE_ID = /^[0-9A-Za-z-]{1,64}$/;

/** A task's record: its processes (TaskPids, start time included) and what it holds on the host. */
export interface PersistedTask extends TaskPids {
  readonly taskId: string;
  /** The Nomad node (TaskConfig.node_id) whose client started the task; '' when Nomad sent none. */
  readonly nodeId: string;
  /** The runtime that launched the task (recovery uses it, whatever the config says now). */
  readonly runtime: 'bwrap' | 'runc';
  /** State key: taskKey(taskId); the task's dir under state_dir/tasks, GC root name, runc container id. */
  readonly key: string;
  /** `<state_dir>/tasks/<key>` (taskStateDir): derived, never stored. */
  readonly stateDir: string;
  /** The shared store view (state_dir/views/<key>) and generated /etc dir (state_dir/etc/<key>). */
  readonly viewKey: string;
  readonly etcKey: string;
  /** The task's cgroup: Nomad's for its alloc and task, or the driver's own (placement.ts taskCgroupProblem). */
  readonly cgroup: TaskCgroupLocation;
  /** The cgroup's OOM-kill counter when the task started (Nomad reuses a task's cgroup). */
  readonly oomKillsBefore: number;
  /**
   * The task's command as launched (its ProcessSpec without the environment, which Nomad sends
   * again, and the hostname): exec'd commands into a recovered task get the same.
   */
  readonly user: { readonly uid: number; readonly gid: number };
  /** The command's capabilities (`CAP_…`). */
  readonly capabilities: readonly string[];
  readonly argv: readonly string[];
  readonly cwd: string;
}

/** `<state root>/tasks/<key>`: a task's state dir, derived from the configured state_dir. */
export function taskStateDir(stateRoot: string, key: string): string {
  return join(stateRoot, 'tasks', key);
}

/** What StartTask knows once the task is launched. */
export interface StartedTask {
  readonly taskId: string;
  readonly nodeId: string;
  readonly runtime: 'bwrap' | 'runc';
  /** The configured state_dir. */
  readonly stateRoot: string;
  readonly viewKey: string;
  readonly etcKey: string;
  readonly launched: TaskPids;
  readonly cgroup: TaskCgroupLocation;
  readonly oomKillsBefore: number;
  readonly process: Pick<ProcessSpec, 'argv' | 'cwd' | 'uid' | 'gid' | 'capabilities'>;
}

/** The record of a task StartTask launched; key and state dir derived as decoding derives them. */
export function persistedTask(started: StartedTask): PersistedTask {
  const key = taskKey(started.taskId);
  const { launched, process } = started;
  return {
    taskId: started.taskId,
    nodeId: started.nodeId,
    runtime: started.runtime,
    key,
    stateDir: taskStateDir(started.stateRoot, key),
    viewKey: started.viewKey,
    etcKey: started.etcKey,
    pid: launched.pid,
    pidStartTime: launched.pidStartTime,
    initPid: launched.initPid,
    initStartTime: launched.initStartTime,
    startedAt: launched.startedAt,
    cgroup: started.cgroup,
    oomKillsBefore: started.oomKillsBefore,
    user: { uid: process.uid, gid: process.gid },
    capabilities: [...process.capabilities],
    argv: [...process.argv],
    cwd: process.cwd,
  };
}

/** The record as stored (driver_state, task.json): version 4 JSON, without the derived state dir. */
export function encodePersistedTask(task: PersistedTask): Buffer {
  const { stateDir: _derived, startedAt, ...stored } = task;
  return Buffer.from(JSON.stringify({ version: PERSISTED_TASK_VERSION, ...stored, startedAt: startedAt.toISOString() }));
}

const WHAT = 'recover task';
/** driver_state is untrusted: one that does not hold was altered (or written by something else). */
const FIX = "check that only root can write the Nomad client's data_dir, where Nomad keeps driver_state; Nomad starts the task again";

function bad(field: string, value: unknown, why: string, fix = FIX): Error {
  return failure(WHAT, `driver_state field ${field} ${quote(typeof value === 'string' ? value : (JSON.stringify(value) ?? 'undefined'))} ${why}`, {
    code: 'invalid_argument',
    fix,
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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
 * Parses and validates a driver_state blob (version 4, 3 or 2) for task `expect.taskId`.
 * Nothing in it is trusted: every key has its grammar and must be the one the driver derives
 * from the task id, the state dir is derived from `expect.stateRoot`, the cgroup must be the
 * task's own. Throws an invalid_argument DriverError naming the field.
 */
export function decodePersistedTask(bytes: Uint8Array, expect: PersistedTaskExpectation): PersistedTask {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw failure(WHAT, `driver_state is not JSON: ${(error as Error).message}`, { code: 'invalid_argument', fix: FIX });
  }
  return decodeRecord(value, expect.taskId, expect.stateRoot);
}

/**
 * A task.json the orphan sweep read (parsed JSON), validated as decodePersistedTask does, for
 * the task the record itself names: the caller checks that its key is the dir's name.
 */
export function decodeTaskFile(value: unknown, stateRoot: string): PersistedTask {
  return decodeRecord(value, undefined, stateRoot);
}

function decodeRecord(value: unknown, expectedTaskId: string | undefined, stateRoot: string): PersistedTask {
  if (!isObject(value)) throw bad('(root)', value, 'is not an object');
  const v = value;
  const version = DECODED_VERSIONS.find((n) => n === v.version);
  if (version === undefined) {
    throw bad(
      'version',
      v.version,
      `is not ${DECODED_VERSIONS.slice(0, -1).join(', ')} or ${DECODED_VERSIONS.at(-1)} (written by another plugin version)`,
      'install the plugin version that started the task to recover it; otherwise Nomad starts the task again',
    );
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
  const taskId = expectedTaskId ?? str('taskId');
  if (str('taskId') !== taskId) throw bad('taskId', v.taskId, `does not belong to task ${quote(taskId)}`);
  const parts = taskIdParts(taskId);
  if (parts === undefined) throw bad('taskId', taskId, 'is not <alloc id>/<task name>/<id>');
  const stateKey = key('key');
  if (stateKey !== taskKey(taskId)) throw bad('key', stateKey, `is not the task's key ${quote(taskKey(taskId))}`);
  // versions 3 and 2 stored the GC root key (always the state key) and the root plan (checked below)
  if (version !== PERSISTED_TASK_VERSION && key('gcRootKey') !== stateKey) throw bad('gcRootKey', v.gcRootKey, `is not the task's key ${quote(stateKey)}`);
  const stateDir = taskStateDir(stateRoot, stateKey);
  if (version === 2 && path('stateDir') !== stateDir) throw bad('stateDir', v.stateDir, `is not the task's dir ${stateDir} under the configured state_dir`);
  if (version !== 2 && v.stateDir !== undefined) throw bad('stateDir', v.stateDir, `is not stored in version ${version} (derived from state_dir)`);
  const nodeId = version === 2 || v.nodeId === '' ? '' : str('nodeId');
  if (nodeId !== '' && !NODE_ID.test(nodeId)) throw bad('nodeId', nodeId, 'is not a Nomad node id');
  const runtime = str('runtime');
  if (runtime !== 'bwrap' && runtime !== 'runc') throw bad('runtime', runtime, 'is not "bwrap" or "runc"');
  const startedAt = new Date(str('startedAt'));
  if (Number.isNaN(startedAt.getTime())) throw bad('startedAt', v.startedAt, 'is not a timestamp');
  const user = v.user;
  if (!isObject(user)) throw bad('user', user, version === PERSISTED_TASK_VERSION ? 'is not {uid, gid}' : 'is not {name, uid, gid}');
  if (version !== PERSISTED_TASK_VERSION && typeof user.name !== 'string') throw bad('user', user, 'is not {name, uid, gid}');
  const argv = v.argv;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw bad('argv', argv, 'is not a non-empty list of strings');
  const capabilities = v.capabilities;
  if (!Array.isArray(capabilities) || !capabilities.every((c) => typeof c === 'string' && /^CAP_[A-Z_]+$/.test(c)))
    throw bad('capabilities', capabilities, 'is not a list of CAP_ names');
  const plan = v.plan;
  if (version !== PERSISTED_TASK_VERSION && (!isObject(plan) || !Array.isArray(plan.ops))) throw bad('plan', plan, 'is not a root plan');
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
    taskId,
    nodeId,
    runtime,
    key: stateKey,
    stateDir,
    viewKey: contentKey('viewKey'),
    etcKey: contentKey('etcKey'),
    pid: int('pid', v, 2),
    pidStartTime: int('pidStartTime'),
    initPid: int('initPid', v, 2),
    initStartTime: int('initStartTime'),
    startedAt,
    cgroup,
    oomKillsBefore: int('oomKillsBefore'),
    user: { uid: int('uid', user), gid: int('gid', user) },
    capabilities: capabilities as string[],
    argv: argv as string[],
    cwd: path('cwd'),
  };
}

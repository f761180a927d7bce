/**
 * Where a task's cgroup lives, as data that can be stored in TaskState and validated once.
 *
 * Nomad 1.11's client creates the task cgroup itself, before StartTask, in its
 * "procisolation" prestart hook (hashicorp/nomad:client/allocrunner/taskrunner/wrangler_hook.go
 * → client/lib/cgroupslib/editor.go Factory/Setup), and tells the driver where through
 * TaskConfig.Resources.LinuxResources.CpusetCgroupPath (task_runner.go assignCgroup →
 * cgroupslib/init.go LinuxResourcesPath):
 *
 * - v2: one unified cgroup, `<root>/nomad.slice/{share,reserve}.slice/<alloc>.<task>.scope`
 *   (`reserve.slice` when the task reserves cores); CpusetCgroupPath is that directory.
 * - v1: `<root>/{freezer,cpu,memory}/nomad/<alloc>.<task>` plus a cpuset cgroup that is the
 *   shared partition `<root>/cpuset/nomad/share` (every task without reserved cores joins it)
 *   or `<root>/cpuset/nomad/reserve/<alloc>.<task>`; CpusetCgroupPath is the cpuset one. Nomad
 *   creates no pids or cpuacct cgroup for the task: we create those at `nomad/<alloc>.<task>`,
 *   as libcontainer does for the exec driver.
 *
 * "nomad" / "nomad.slice" is the client's `cgroup_parent`; it is read back from
 * CpusetCgroupPath. Pure: no I/O.
 */
import { posix } from 'node:path';
import { failure } from '../errors.js';
import { absolutePathProblem, isWithin } from '../paths.js';
import type { CgroupVersion } from './limits.js';

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

/** v1 hierarchies a task cgroup spans besides cpuset; cpuacct and freezer are optional. */
export const V1_TASK_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'freezer'] as const;
export const V1_OPTIONAL_CONTROLLERS: ReadonlySet<string> = new Set(['cpuacct', 'freezer']);
/** Controllers enabled for a v2 task cgroup (Nomad enables these plus io on nomad.slice). */
export const V2_TASK_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids'] as const;

export interface TaskCgroupLocation {
  readonly version: CgroupVersion;
  /** Where cgroupfs is mounted: the unified hierarchy (v2) or the tmpfs of v1 hierarchies. */
  readonly root: string;
  /** The task's cgroup relative to root (v2) or to each v1 controller's hierarchy. */
  readonly path: string;
  /** v1 only: the cpuset cgroup, relative to `<root>/cpuset`, when it is not `path`. */
  readonly cpusetPath?: string;
  /**
   * v1 only: the cpuset cgroup is a partition other tasks share (Nomad's `share`): the task
   * joins it but never writes cpuset.cpus there and never removes it.
   */
  readonly sharedCpuset?: boolean;
}

const WHAT = 'start task';

/** Why `path` is not a normalised relative cgroup path below the root, or undefined. */
export function cgroupPathProblem(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (/[\0\n]/.test(path)) return 'contains a NUL or newline';
  if (path.startsWith('/')) return 'is absolute; give it relative to the cgroup root';
  if (path.split('/').some((s) => s === '..' || s === '.')) return 'contains a "." or ".." segment';
  if (posix.normalize(path) !== path || path.endsWith('/')) return 'is not normalised (remove "//" or a trailing "/")';
  return undefined;
}

/** Validates a location; throws a DriverError (invalid_argument) naming the bad field. */
export function taskCgroupLocation(input: {
  readonly version: CgroupVersion;
  readonly path: string;
  readonly root?: string;
  readonly cpusetPath?: string;
  readonly sharedCpuset?: boolean;
}): TaskCgroupLocation {
  const root = input.root ?? DEFAULT_CGROUP_ROOT;
  const rootProblem = absolutePathProblem(root);
  if (rootProblem !== undefined) throw failure(WHAT, `cgroup root ${JSON.stringify(root)} ${rootProblem}`, { code: 'invalid_argument' });
  for (const [field, value] of [
    ['path', input.path],
    ['cpusetPath', input.cpusetPath],
  ] as const) {
    if (value === undefined) continue;
    const problem = cgroupPathProblem(value);
    if (problem !== undefined) throw failure(WHAT, `${field} ${JSON.stringify(value)} ${problem}`, { code: 'invalid_argument' });
  }
  if (input.version === 'v2' && (input.cpusetPath !== undefined || input.sharedCpuset === true)) {
    throw failure(WHAT, 'cpusetPath and sharedCpuset apply to cgroups v1 only', {
      code: 'invalid_argument',
      fix: 'on v2 the task has one cgroup: give only path',
    });
  }
  return {
    version: input.version,
    root,
    path: input.path,
    ...(input.cpusetPath === undefined || input.cpusetPath === input.path ? {} : { cpusetPath: input.cpusetPath }),
    ...(input.sharedCpuset === true ? { sharedCpuset: true } : {}),
  };
}

/** Why `allocId` or `taskName` cannot be part of a cgroup name, or undefined. Pure. */
function scopeProblem(allocId: string, taskName: string): string | undefined {
  for (const [field, value] of [
    ['alloc id', allocId],
    ['task name', taskName],
  ] as const) {
    if (value === '' || /[/\0\n]/.test(value)) return `${field} ${JSON.stringify(value)} cannot be part of a cgroup name`;
  }
  return undefined;
}

/** Nomad's scope name of a task cgroup: `<alloc>.<task>` (v1) or `<alloc>.<task>.scope` (v2). */
export function nomadScope(version: CgroupVersion, allocId: string, taskName: string): string {
  const problem = scopeProblem(allocId, taskName);
  if (problem !== undefined) throw failure(WHAT, problem, { code: 'invalid_argument' });
  return version === 'v1' ? `${allocId}.${taskName}` : `${allocId}.${taskName}.scope`;
}

function relativeTo(root: string, absolute: string, field: string): string {
  const problem = absolutePathProblem(absolute);
  if (problem !== undefined || !isWithin(absolute, root) || absolute === root) {
    throw failure(WHAT, `${field} ${JSON.stringify(absolute)} ${problem ?? `is not below ${root}`}`, { code: 'invalid_argument' });
  }
  return absolute.slice(root.length + 1);
}

/**
 * The location Nomad 1.11 gave a task. `cpusetCgroupPath` is
 * LinuxResources.CpusetCgroupPath (absolute); without it, Nomad's defaults are assumed
 * (parent "nomad.slice"/"nomad", shared cores).
 */
export function nomadTaskCgroup(input: {
  readonly version: CgroupVersion;
  readonly allocId: string;
  readonly taskName: string;
  readonly cpusetCgroupPath?: string;
  readonly root?: string;
}): TaskCgroupLocation {
  const root = input.root ?? DEFAULT_CGROUP_ROOT;
  const scope = nomadScope(input.version, input.allocId, input.taskName);
  const given = input.cpusetCgroupPath === undefined || input.cpusetCgroupPath === '' ? undefined : input.cpusetCgroupPath;
  if (input.version === 'v2') {
    const path = given === undefined ? `nomad.slice/share.slice/${scope}` : relativeTo(root, given, 'CpusetCgroupPath');
    return taskCgroupLocation({ version: 'v2', root, path });
  }
  if (given === undefined) return taskCgroupLocation({ version: 'v1', root, path: `nomad/${scope}`, cpusetPath: 'nomad/share', sharedCpuset: true });
  const cpusetPath = relativeTo(`${root}/cpuset`, given, 'CpusetCgroupPath');
  const segments = cpusetPath.split('/');
  const last = segments.at(-1);
  if (last === 'share' && segments.length >= 2) {
    return taskCgroupLocation({ version: 'v1', root, path: `${segments.slice(0, -1).join('/')}/${scope}`, cpusetPath, sharedCpuset: true });
  }
  if (last === scope && segments.at(-2) === 'reserve' && segments.length >= 3) {
    return taskCgroupLocation({ version: 'v1', root, path: `${segments.slice(0, -2).join('/')}/${scope}`, cpusetPath });
  }
  throw failure(WHAT, `CpusetCgroupPath ${JSON.stringify(given)} is neither <parent>/share nor <parent>/reserve/${scope} below ${root}/cpuset`, {
    code: 'invalid_argument',
    fix: "use a Nomad client of version 1.11, whose cgroup layout the plugin knows, or report this CpusetCgroupPath to the plugin's maintainers",
  });
}

/** One directory a v1 task cgroup spans. */
export interface V1Dir {
  readonly controller: string;
  /** `<root>/<controller>/<path>` */
  readonly dir: string;
  /** The task owns it: created, limited and removed with the task. */
  readonly owned: boolean;
}

/** The directories of a v1 task cgroup, cpuset first. */
export function v1Dirs(location: TaskCgroupLocation): V1Dir[] {
  const { root, path } = location;
  return [
    { controller: 'cpuset', dir: posix.join(root, 'cpuset', location.cpusetPath ?? path), owned: location.sharedCpuset !== true },
    ...V1_TASK_CONTROLLERS.map((controller) => ({ controller, dir: posix.join(root, controller, path), owned: true })),
  ];
}

/** The directory holding `controller`'s files for the task (v2: the one task cgroup). */
export function controllerDir(location: TaskCgroupLocation, controller: string): string {
  if (location.version === 'v2') return posix.join(location.root, location.path);
  if (controller === 'cpuset') return posix.join(location.root, 'cpuset', location.cpusetPath ?? location.path);
  return posix.join(location.root, controller, location.path);
}

/** Parent of the cgroups the driver creates itself (when Nomad gave the task none). */
export const DRIVER_CGROUP_PARENT = 'nomad-driver-nix';

/**
 * Why `location` is not a cgroup the driver itself would use for task `taskName` of
 * allocation `allocId` with state key `key`, or undefined: the cgroup root is the standard
 * one, and the task's cgroup is Nomad's `<parent>/<alloc>.<task>` (v1, with the cpuset
 * partition `<parent>/share` or `<parent>/reserve/<alloc>.<task>`), Nomad's
 * `<parent>/{share,reserve}.slice/<alloc>.<task>.scope` (v2), or the driver's own
 * `nomad-driver-nix/<key>`. A location read back from driver_state passes this before any of
 * its processes is signalled or the cgroup removed. Pure.
 */
export function taskCgroupProblem(
  location: TaskCgroupLocation,
  task: { readonly allocId: string; readonly taskName: string; readonly key: string },
): string | undefined {
  if (location.root !== DEFAULT_CGROUP_ROOT) return `has root ${JSON.stringify(location.root)}, not ${DEFAULT_CGROUP_ROOT}`;
  for (const [field, value] of [
    ['path', location.path],
    ['cpusetPath', location.cpusetPath],
  ] as const) {
    if (value === undefined) continue;
    const problem = cgroupPathProblem(value);
    if (problem !== undefined) return `has ${field} ${JSON.stringify(value)}, which ${problem}`;
  }
  const own = `${DRIVER_CGROUP_PARENT}/${task.key}`;
  if (location.path === own && location.cpusetPath === undefined && location.sharedCpuset !== true) return undefined;
  const scopeFault = scopeProblem(task.allocId, task.taskName);
  if (scopeFault !== undefined) return scopeFault;
  const scope = nomadScope(location.version, task.allocId, task.taskName);
  const segments = location.path.split('/');
  const outside = `is neither ${own} nor Nomad's cgroup of the task (…/${scope})`;
  if (segments.length < 2 || segments.at(-1) !== scope) return outside;
  if (location.version === 'v2') {
    if (location.cpusetPath !== undefined || location.sharedCpuset === true) return 'has a cpuset path on cgroups v2';
    const slice = segments.at(-2);
    return slice === 'share.slice' || slice === 'reserve.slice' ? undefined : outside;
  }
  const parent = segments.slice(0, -1).join('/');
  if (location.sharedCpuset === true ? location.cpusetPath === `${parent}/share` : location.cpusetPath === `${parent}/reserve/${scope}`) return undefined;
  return `has cpuset ${JSON.stringify(location.cpusetPath ?? location.path)}, which is neither ${parent}/share (shared) nor ${parent}/reserve/${scope}`;
}

/**
 * True when the /proc/<pid>/cgroup text `text` (read from the host's cgroup namespace) puts
 * the process in `location` or below it: the unified line on v2, the memory hierarchy on v1.
 * Pure.
 */
export function procCgroupIn(text: string, location: TaskCgroupLocation): boolean {
  const want = `/${location.path}`;
  const path = procCgroupPath(text, location.version);
  return path !== undefined && (path === want || path.startsWith(`${want}/`));
}

/**
 * The cgroup path a /proc/<pid>/cgroup `text` (cgroups(7): `id:controllers:path` lines) gives
 * for the unified hierarchy (v2) or for v1 `controller`'s hierarchy; undefined when it has no
 * such line. The path is everything after the second colon (it may hold colons). Pure.
 */
export function procCgroupPath(text: string, version: CgroupVersion, controller = 'memory'): string | undefined {
  for (const line of text.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (controllers === undefined || path === undefined) continue;
    if (version === 'v2' ? controllers === '' : controllers.split(',').includes(controller)) return path;
  }
  return undefined;
}

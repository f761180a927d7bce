/**
 * One task's cgroup on the host: create it (or adopt the one Nomad created), apply limits,
 * move processes in, kill everything in it, read its stats and OOM kills, and remove it.
 * Works on cgroups v1 (one directory per controller hierarchy: cpu, cpuacct, memory, pids,
 * freezer, plus a cpuset directory that may be a partition shared with other tasks) and on
 * v2 (one directory, with the controllers enabled down the tree in cgroup.subtree_control).
 * Where the cgroup lives is decided in placement.ts and what to write in limits.ts; this
 * module only reads and writes files under the location's root, through CgroupIo.
 *
 * Not done here: choosing the location (placement.ts nomadTaskCgroup) and starting the task
 * in the cgroup before it forks; the runtime must add its launcher's pid before it execs
 * the task (e.g. bwrap --block-fd), or children forked earlier stay outside.
 */
import { posix } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, failure } from '../errors.js';
import { errnoCode } from '../host/fs.js';
import { cgroupFileOf } from '../host/proc.js';
import { type CgroupFileReader, type CgroupIo, nodeCgroupIo } from './io.js';
import { limitWrites, type TaskLimits } from './limits.js';
import { controllerDir, procCgroupPath, type TaskCgroupLocation, V1_OPTIONAL_CONTROLLERS, V2_TASK_CONTROLLERS, type V1Dir, v1Dirs } from './placement.js';
import { parseOomKills, parsePids, STATS_FILES, statsFromFiles, type TaskCgroupStats } from './stats.js';

export interface TaskCgroupOptions {
  /** File operations; the default is the real cgroupfs. Tests pass a fake-tree kernel. */
  readonly io?: CgroupIo;
}

/** The open stats files of one task cgroup (TaskCgroup.openStats). */
export interface TaskStatsReader {
  /** One sample, read now; once the cgroup is removed its files read as missing. */
  read(): TaskCgroupStats;
  close(): void;
}

export interface RemoveOptions {
  /** How long rmdir is retried while the kernel still counts exiting processes (EBUSY). */
  readonly timeoutMs?: number;
}

const words = (text: string | undefined) => (text ?? '').split(/\s+/).filter((w) => w !== '');

export class TaskCgroup {
  readonly location: TaskCgroupLocation;
  readonly #io: CgroupIo;
  #presentV1: Promise<V1Dir[]> | undefined;

  constructor(location: TaskCgroupLocation, options: TaskCgroupOptions = {}) {
    this.location = location;
    this.#io = options.io ?? nodeCgroupIo;
  }

  /** The task's directory (v2), or the directory of `controller` (v1). */
  dir(controller = 'memory'): string {
    return controllerDir(this.location, controller);
  }

  /** v1: the task's directories whose hierarchy is mounted (cpuacct and freezer may not be). */
  async #v1Dirs(): Promise<V1Dir[]> {
    this.#presentV1 ??= (async () => {
      const dirs = v1Dirs(this.location);
      const mounted = await Promise.all(dirs.map((d) => this.#io.exists(posix.join(this.location.root, d.controller))));
      return dirs.filter((_, i) => mounted[i] === true);
    })();
    return this.#presentV1;
  }

  async #write(what: string, file: string, value: string): Promise<void> {
    try {
      await this.#io.write(file, value);
    } catch (error) {
      throw this.#writeFailure(what, file, value, error);
    }
  }

  #writeNow(what: string, file: string, value: string): void {
    try {
      this.#io.writeNow(file, value);
    } catch (error) {
      throw this.#writeFailure(what, file, value, error);
    }
  }

  #writeFailure(what: string, file: string, value: string, error: unknown): Error {
    const code = errnoCode(error);
    return failure(what, `cannot write ${JSON.stringify(value)} to ${file}: ${errorMessage(error)}`, {
      code: code === 'ENOENT' || code === 'EBUSY' || code === 'ENOSPC' ? 'failed_precondition' : 'internal',
      ...(code === 'ENOENT'
        ? { fix: 'the controller owning this file is not enabled for the cgroup; check the cgroup mounts (v1) or cgroup.subtree_control (v2)' }
        : {}),
      ...(code === 'ENOSPC' ? { fix: 'the cpuset cgroup has no cpuset.cpus or cpuset.mems; set them from its parent' } : {}),
      cause: error,
    });
  }

  /** Writes the limits; validates them first (invalid_argument naming the field). */
  async applyLimits(limits: TaskLimits): Promise<void> {
    const writes = limitWrites(this.location.version, limits);
    if (this.location.sharedCpuset === true && writes.some((w) => w.controller === 'cpuset')) {
      throw failure('start task', `the task's cpuset cgroup ${this.dir('cpuset')} is shared with other tasks, so cpusetCpus cannot be set there`, {
        code: 'failed_precondition',
        fix: 'give a task with reserved cores its own cpuset cgroup (Nomad: <parent>/reserve/<alloc>.<task>)',
      });
    }
    for (const w of writes) await this.#write('start task', posix.join(this.dir(w.controller), w.file), w.value);
  }

  /** Moves process `pid` (and, from now on, its new children) into the task cgroup. */
  async addProcess(pid: number): Promise<void> {
    if (!Number.isSafeInteger(pid) || pid <= 0) throw failure('start task', `pid ${String(pid)} is not a positive whole number`, { code: 'invalid_argument' });
    // one synchronous write per hierarchy (v1): the sandbox waits for them, and a round trip
    // through the thread pool costs more than the write (CgroupIo.writeNow)
    for (const file of await this.procsFiles()) this.#writeNow('start task', file, String(pid));
  }

  /**
   * Readies the kernel for an addProcess in the next milliseconds. Every move of a process
   * between cgroups takes the kernel's global write lock on cgroup_threadgroup_rwsem, and the
   * first one after an idle moment waits for an RCU grace period to take it: measured on
   * Linux 6.18, cgroups v1, a loaded 2-core host, about 10 ms (5–20) for the first of the
   * nine writes of an addProcess, 0.01–0.1 ms for each one after it, and 0.1–0.2 ms for all
   * nine right after another move (issue 16). This move is that other one, made while the
   * runtime is still starting the sandbox: `pid` (the launch's own runtime monitor, outside
   * the task, which nobody else moves) goes into the cgroup it is already in, in the hierarchy
   * of the first write of addProcess, which leaves it where it is. Off the event loop (one
   * thread-pool write); never rejects: a process that is gone, or a cgroup that is not there,
   * only loses the head start.
   */
  async readyJoin(pid: number): Promise<void> {
    try {
      const text = cgroupFileOf(pid);
      if (text === undefined) return;
      const file = await this.#ownProcsFile(text);
      if (file !== undefined) await this.#io.write(file, String(pid));
    } catch {
      // only the head start is lost
    }
  }

  /** The cgroup.procs of the cgroup that /proc/<pid>/cgroup `text` names, in the hierarchy addProcess writes first. */
  async #ownProcsFile(text: string): Promise<string | undefined> {
    if (this.location.version === 'v2') {
      const path = procCgroupPath(text, 'v2');
      return path === undefined ? undefined : posix.join(this.location.root, path, 'cgroup.procs');
    }
    const [first] = await this.#v1Dirs();
    if (first === undefined) return undefined;
    const path = procCgroupPath(text, 'v1', first.controller);
    return path === undefined ? undefined : posix.join(this.location.root, first.controller, path, 'cgroup.procs');
  }

  /**
   * The cgroup.procs files a process writes its pid to, to join the task cgroup itself (v1:
   * one per mounted hierarchy). For processes the driver cannot hold still while it adds them,
   * such as a command exec'd into the task, which joins before it forks.
   */
  async procsFiles(): Promise<string[]> {
    const dirs = this.location.version === 'v2' ? [this.dir()] : (await this.#v1Dirs()).map((d) => d.dir);
    return dirs.map((dir) => posix.join(dir, 'cgroup.procs'));
  }

  /** Pids in the task cgroup (v1: as the pids hierarchy lists them), sorted. */
  async processes(): Promise<number[]> {
    const text = await this.#io.read(posix.join(this.dir('pids'), 'cgroup.procs'));
    return [...new Set(parsePids(text ?? ''))].sort((a, b) => a - b);
  }

  /**
   * SIGKILLs every process in the cgroup. v2: cgroup.kill (kernel >= 5.14). v1: freezes the
   * freezer cgroup first so nothing forks while the list is walked, as Nomad's client does
   * (hashicorp/nomad:client/lib/cgroupslib/editor.go lifeCG1.Kill). Without either, signals
   * the listed pids a few times over. Processes may still be exiting when this returns.
   */
  async kill(): Promise<void> {
    const { version } = this.location;
    if (version === 'v2' && (await this.#io.exists(posix.join(this.dir(), 'cgroup.kill')))) {
      await this.#write('destroy task', posix.join(this.dir(), 'cgroup.kill'), '1');
      return;
    }
    const freezer = version === 'v1' ? (await this.#v1Dirs()).find((d) => d.controller === 'freezer') : undefined;
    if (freezer === undefined) {
      for (let pass = 0; pass < 5; pass += 1) {
        const pids = await this.processes();
        if (pids.length === 0) return;
        signalAll(pids);
        await sleep(20);
      }
      return;
    }
    const state = posix.join(freezer.dir, 'freezer.state');
    await this.#write('destroy task', state, 'FROZEN');
    try {
      for (let waited = 0; waited < 1000 && (await this.#io.read(state))?.trim() !== 'FROZEN'; waited += 10) await sleep(10);
      signalAll(parsePids((await this.#io.read(posix.join(freezer.dir, 'cgroup.procs'))) ?? ''));
    } finally {
      await this.#write('destroy task', state, 'THAWED');
    }
  }

  /**
   * Removes the task's directories (never a shared cpuset partition, never a parent) with
   * rmdir, retrying while the kernel still counts exiting processes (EBUSY). Kill first: a
   * cgroup with live processes is not removed, and that is reported.
   */
  async remove(options: RemoveOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 5000;
    const dirs = this.location.version === 'v2' ? [this.dir()] : (await this.#v1Dirs()).filter((d) => d.owned).map((d) => d.dir);
    const deadline = Date.now() + timeoutMs;
    for (const dir of dirs) {
      for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
        try {
          await this.#io.rmdir(dir);
          break;
        } catch (error) {
          const code = errnoCode(error);
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || Date.now() >= deadline) {
            throw failure(
              'destroy task',
              code === 'EBUSY' ? `${dir} still has processes or child cgroups after ${timeoutMs} ms` : `cannot remove ${dir}: ${errorMessage(error)}`,
              {
                code: code === 'EBUSY' ? 'failed_precondition' : 'internal',
                ...(code === 'EBUSY' ? { fix: `kill the processes listed in ${dir}/cgroup.procs on the client, then remove ${dir} (rmdir)` } : {}),
                cause: error,
              },
            );
          }
          await sleep(delay);
        }
      }
    }
  }

  /** CPU counters and memory usage, parsed (stats.ts); a file that is missing is left out. */
  async readStats(): Promise<TaskCgroupStats> {
    const reader = await this.openStats();
    try {
      return reader.read();
    } finally {
      reader.close();
    }
  }

  /**
   * Opens the stats files once (STATS_FILES; a missing one is left out for good) for a
   * stream of samples: each `read()` re-reads the open descriptors, synchronously (io.ts
   * CgroupFileReader), so a sample costs no open/close and no thread-pool round trip.
   * `close()` closes them all; the caller must call it when the stream ends.
   */
  async openStats(): Promise<TaskStatsReader> {
    const version = this.location.version;
    const keys = STATS_FILES[version];
    const readers = await Promise.all(
      keys.map((key) => {
        const [controller, file] = version === 'v1' ? key.split('/') : ['memory', key];
        return this.#io.openReader(posix.join(this.dir(controller), file ?? key));
      }),
    );
    const open = keys.flatMap((key, i) => {
      const reader = readers[i];
      return reader === undefined ? [] : [{ key, reader }];
    });
    return {
      read: () => {
        const files = new Map<string, string>();
        for (const { key, reader } of open) {
          const text = readGone(reader);
          if (text !== undefined) files.set(key, text);
        }
        return statsFromFiles(version, files);
      },
      close: () => {
        for (const { reader } of open) reader.close();
      },
    };
  }

  /**
   * How many processes the kernel's OOM killer has killed in this cgroup: memory.events
   * `oom_kill` (v2) or memory.oom_control `oom_kill` (v1, kernel >= 4.13); undefined when the
   * kernel does not count. A task was OOM-killed when this grew while it ran. (v1
   * memory.failcnt counts hits of the limit, not kills: it stayed 0 across an OOM kill here.)
   */
  async readOomKills(): Promise<number | undefined> {
    const text = await this.#io.read(this.#oomKillsFile());
    return text === undefined ? undefined : parseOomKills(text);
  }

  /**
   * readOomKills for a caller that reads it every second while the task runs (driver/oom-watch.ts):
   * the file is opened once and each `read()` is one pread, as for stats (openStats) — an
   * open/read/close through the thread pool per task per second cost the plugin 3.4 % of a core
   * with 50 idle tasks (issue 16, `npm run bench:stats`). `read()` gives undefined once the
   * cgroup is gone; undefined when the file does not exist. `close()` when the task ended.
   */
  async openOomKills(): Promise<{ read(): number | undefined; close(): void } | undefined> {
    const reader = await this.#io.openReader(this.#oomKillsFile());
    if (reader === undefined) return undefined;
    return {
      read: () => {
        const text = readGone(reader);
        return text === undefined ? undefined : parseOomKills(text);
      },
      close: () => reader.close(),
    };
  }

  #oomKillsFile(): string {
    return posix.join(this.dir('memory'), this.location.version === 'v2' ? 'memory.events' : 'memory.oom_control');
  }
}

/** The reader's text, or undefined once its cgroup was removed (ENODEV), as for a missing file. */
function readGone(reader: CgroupFileReader): string | undefined {
  try {
    return reader.read();
  } catch (error) {
    if (errnoCode(error) === 'ENODEV' || errnoCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

function signalAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Adopts an existing task cgroup (e.g. in RecoverTask) without touching the host. */
export function openTaskCgroup(location: TaskCgroupLocation, options: TaskCgroupOptions = {}): TaskCgroup {
  return new TaskCgroup(location, options);
}

/**
 * Creates the task cgroup, or completes the one Nomad's client already created (idempotent).
 * v2: every ancestor from the root down must offer cpu, cpuset, memory and pids in
 * cgroup.controllers; they are enabled in each ancestor's cgroup.subtree_control where they
 * are not yet, then missing directories are made. v1: the directory is made in every
 * mounted hierarchy (cpu, memory, pids and cpuset must be mounted); a cpuset directory we
 * create gets its parent's cpuset.cpus and cpuset.mems, without which no process may join.
 */
export async function createTaskCgroup(location: TaskCgroupLocation, options: TaskCgroupOptions = {}): Promise<TaskCgroup> {
  const io = options.io ?? nodeCgroupIo;
  const cgroup = new TaskCgroup(location, options);
  if (location.version === 'v2') {
    let dir = location.root;
    for (const segment of location.path.split('/')) {
      await enableControllers(io, dir);
      dir = posix.join(dir, segment);
      await makeDir(io, dir);
    }
    return cgroup;
  }
  for (const { controller, dir } of v1Dirs(location)) {
    const base = posix.join(location.root, controller);
    if (!(await io.exists(base))) {
      if (V1_OPTIONAL_CONTROLLERS.has(controller)) continue;
      throw failure('start task', `the cgroups v1 ${controller} controller is not mounted at ${base}`, {
        code: 'failed_precondition',
        fix: `mount it (mount -t cgroup -o ${controller} cgroup ${base}) or boot with cgroups v2`,
      });
    }
    let current = base;
    for (const segment of dir.slice(base.length + 1).split('/')) {
      const parent = current;
      current = posix.join(current, segment);
      if ((await makeDir(io, current)) && controller === 'cpuset') await inheritCpuset(io, parent, current);
    }
  }
  return cgroup;
}

async function makeDir(io: CgroupIo, dir: string): Promise<boolean> {
  try {
    return await io.mkdir(dir);
  } catch (error) {
    throw failure('start task', `cannot create ${dir}: ${errorMessage(error)}`, { code: 'failed_precondition', cause: error });
  }
}

async function enableControllers(io: CgroupIo, dir: string): Promise<void> {
  const available = await io.read(posix.join(dir, 'cgroup.controllers'));
  if (available === undefined) {
    throw failure('start task', `${dir} is not a cgroup v2 directory (it has no cgroup.controllers)`, {
      code: 'failed_precondition',
      fix: 'mount cgroup2 at the cgroup root',
    });
  }
  const missing = V2_TASK_CONTROLLERS.filter((c) => !words(available).includes(c));
  if (missing.length > 0) {
    throw failure('start task', `controllers ${missing.join(', ')} are not available in ${dir} (cgroup.controllers: ${words(available).join(' ') || 'none'})`, {
      code: 'failed_precondition',
      fix: "enable them in the parent's cgroup.subtree_control, or delegate them to the Nomad client's cgroup (systemd: Delegate=yes)",
    });
  }
  const subtree = posix.join(dir, 'cgroup.subtree_control');
  const enabled = words(await io.read(subtree));
  const toEnable = V2_TASK_CONTROLLERS.filter((c) => !enabled.includes(c));
  if (toEnable.length === 0) return;
  try {
    await io.write(subtree, toEnable.map((c) => `+${c}`).join(' '));
  } catch (error) {
    if (errnoCode(error) !== 'EBUSY')
      throw failure('start task', `cannot enable ${toEnable.join(', ')} in ${subtree}: ${errorMessage(error)}`, {
        code: 'failed_precondition',
        cause: error,
      });
    throw failure('start task', `cannot enable ${toEnable.join(', ')} in ${subtree}: ${dir} has processes of its own`, {
      code: 'failed_precondition',
      fix: 'cgroups v2 lets only a cgroup without processes hand controllers to its children; put the tasks under a parent that has none (Nomad uses nomad.slice)',
      cause: error,
    });
  }
}

async function inheritCpuset(io: CgroupIo, parent: string, dir: string): Promise<void> {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    if ((await io.read(posix.join(dir, file)))?.trim()) continue;
    const value = (await io.read(posix.join(parent, file)))?.trim() ?? '';
    if (value === '') continue;
    try {
      await io.write(posix.join(dir, file), value);
    } catch (error) {
      throw failure('start task', `cannot copy ${file} ${JSON.stringify(value)} from ${parent} to ${dir}: ${errorMessage(error)}`, {
        code: 'failed_precondition',
        cause: error,
      });
    }
  }
}

/**
 * Waiting for a task whose runtime monitor is not (or no longer) the plugin's child: after a
 * plugin restart the monitor (bwrap, or the sh running `runc run`) belongs to the host's init,
 * so its exit cannot be awaited; it is polled, with its start time guarding against a reused
 * pid, and the exit code is then read from the file the monitor wrote.
 */
import { realpathSync } from 'node:fs';
import { executableOf, isRunning, processStartTime } from '../host/proc.js';
import { watchFile } from '../host/task-files.js';

/** True when `pid` is still the very process that started at `startTime` (clock ticks since boot). */
export function sameProcess(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime && isRunning(pid);
}

/**
 * The two host processes of a task, each checked before it is signalled: its recorded start
 * time, and that it is the task's own, not a process that happens to have that pid and start
 * time (or a pid crafted into driver_state): the monitor runs the runtime's own executable and
 * carries a mark of this task (`monitorMark`: bwrap's status fd on the task's status file, the
 * runc monitor's bundle and container id), the sandbox's init is in the task's cgroup.
 */
export interface TaskProcesses {
  readonly pid: number;
  readonly pidStartTime: number;
  readonly initPid: number;
  readonly initStartTime: number;
  /** The runtime binary the monitor runs (bwrap, or the shell of runc's monitor), symlinks resolved. */
  readonly monitorExecutable: string;
  readonly monitorMark: (pid: number) => boolean;
  readonly inTaskCgroup: (pid: number) => boolean;
}

/** True when the monitor is alive and provably this task's (see TaskProcesses). */
export function monitorIsOurs(p: TaskProcesses): boolean {
  return sameProcess(p.pid, p.pidStartTime) && executableOf(p.pid) === p.monitorExecutable && p.monitorMark(p.pid);
}

/** True when the sandbox's init is alive and provably this task's (see TaskProcesses). */
export function initIsOurs(p: TaskProcesses): boolean {
  return sameProcess(p.initPid, p.initStartTime) && p.inTaskCgroup(p.initPid);
}

/** `path` with symlinks resolved (as /proc/<pid>/exe and /proc/<pid>/fd show it), or `path` itself when it cannot be resolved. */
export function resolvedPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/**
 * Resolves with the recorded exit code (undefined when none was written) once `alive` (the
 * task's monitor, checked with monitorIsOurs) turns false. Polls every `pollMs`.
 */
export async function watchDetachedExit(alive: () => boolean, readRecorded: () => Promise<number | undefined>, pollMs = 250): Promise<number | undefined> {
  while (alive()) await new Promise((resolve) => setTimeout(resolve, pollMs));
  // the monitor writes the record just before it exits; a moment's grace for the rename
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const code = await readRecorded();
    if (code !== undefined) return code;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}

/**
 * Resolves with what `read` returns as soon as it is defined, re-reading whenever `watched`
 * (a file or directory) changes (inotify, with a 50 ms poll as a safety net), or with its
 * last answer once `exited` settles: how both runtimes learn the sandbox's pid at launch.
 */
export async function waitForValue<T>(watched: string, read: () => Promise<T | undefined>, exited: Promise<unknown>): Promise<T | undefined> {
  let done = false;
  void exited.then(() => (done = true));
  const changes = watchFile(watched);
  try {
    for (;;) {
      const value = await read();
      if (value !== undefined) return value;
      if (done) return read();
      await Promise.race([changes.next(), exited, new Promise((r) => setTimeout(r, 50))]);
    }
  } finally {
    changes.close();
  }
}

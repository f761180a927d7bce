/**
 * Waiting for a task whose runtime monitor is not (or no longer) the plugin's child: after a
 * plugin restart the monitor (bwrap, or the sh running `runc run`) belongs to the host's init,
 * so its exit cannot be awaited; it is polled, with its start time guarding against a reused
 * pid, and the exit code is then read from the file the monitor wrote.
 */
import type { ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { failure } from '../errors.js';
import { executableOf, isRunning, processStartTime, signalProcess } from '../host/proc.js';
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

/** How long a launch waits for the runtime to report the sandbox's pid (the status or pid file). */
export const LAUNCH_REPORT_TIMEOUT_MS = 60_000;
/** How long a failed launch waits for its runtime monitor to die after SIGKILL. */
export const LAUNCH_KILL_TIMEOUT_MS = 10_000;

/**
 * Resolves with what `read` returns as soon as it is defined, re-reading whenever `watched`
 * (a file or directory) changes (inotify, with a 50 ms poll as a safety net), or with its
 * last answer once `exited` settles: how both runtimes learn the sandbox's pid at launch.
 * Rejects with a `deadline_exceeded` DriverError "failed to launch task: <what> within <N> s"
 * when neither happened within `deadline.ms`: a launch never waits unbounded.
 */
export async function waitForValue<T>(
  watched: string,
  read: () => Promise<T | undefined>,
  exited: Promise<unknown>,
  deadline: { readonly ms: number; readonly what: string; readonly fix: string } = {
    ms: LAUNCH_REPORT_TIMEOUT_MS,
    what: "the runtime did not report the sandbox's pid",
    fix: 'see the plugin log',
  },
): Promise<T | undefined> {
  let done = false;
  void exited.then(() => (done = true));
  let expired = false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      expired = true;
      resolve();
    }, deadline.ms);
  });
  const changes = watchFile(watched);
  try {
    for (;;) {
      const value = await read();
      if (value !== undefined) return value;
      if (done) return read();
      if (expired) {
        throw failure('launch task', `${deadline.what} within ${Math.round(deadline.ms / 1000)} s`, { code: 'deadline_exceeded', fix: deadline.fix });
      }
      await Promise.race([changes.next(), exited, timeout, new Promise((r) => setTimeout(r, 50))]);
    }
  } finally {
    clearTimeout(timer);
    changes.close();
  }
}

/** What a freshly spawned runtime monitor reports: its exit, or that it could not be started. */
export interface SpawnedMonitor {
  /** Settles when the process has exited (never, when it could not be started). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Settles with the spawn error, when the process could not be started. */
  readonly spawnError: Promise<Error>;
}

/**
 * Listens for `child`'s 'exit' and 'error' at once, before anything is awaited: a monitor that
 * fails right away (bwrap rejecting its arguments or its setup) emits 'exit' while the caller
 * still awaits other work (closing the log handles on a busy thread pool), and an event without
 * a listener is lost — the launch then waited forever for a pid that was never reported
 * (issue 10, item 8). Call it synchronously after spawn().
 */
export function watchSpawned(child: ChildProcess): SpawnedMonitor {
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  return { exited, spawnError };
}

/**
 * SIGKILLs a launch's detached monitor (its whole process group: it leads one) and waits, at
 * most `timeoutMs`, for its exit: the cleanup of a launch that failed before it returned a task.
 */
export async function killMonitor(pid: number, exited: Promise<unknown>, timeoutMs = LAUNCH_KILL_TIMEOUT_MS): Promise<void> {
  signalProcess(-pid, 'SIGKILL');
  signalProcess(pid, 'SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}

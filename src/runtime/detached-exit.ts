/**
 * Waiting for a task whose runtime monitor is not (or no longer) the plugin's child: after a
 * plugin restart the monitor (bwrap, or the sh running `runc run`) belongs to the host's init,
 * so its exit cannot be awaited; it is polled, with its start time guarding against a reused
 * pid, and the exit code is then read from the file the monitor wrote.
 */
import { isRunning, processStartTime } from '../host/proc.js';
import { watchFile } from '../host/task-files.js';

/** True when `pid` is still the very process that started at `startTime` (clock ticks since boot). */
export function sameProcess(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime && isRunning(pid);
}

/**
 * Resolves with the recorded exit code (undefined when none was written) once the process
 * `pid` started at `startTime` is gone. Polls every `pollMs`.
 */
export async function watchDetachedExit(pid: number, startTime: number, readRecorded: () => Promise<number | undefined>, pollMs = 250): Promise<number | undefined> {
  while (sameProcess(pid, startTime)) await new Promise((resolve) => setTimeout(resolve, pollMs));
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

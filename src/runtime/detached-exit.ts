/**
 * Waiting for a task whose runtime monitor is not (or no longer) the plugin's child: after a
 * plugin restart the monitor (bwrap, or the sh running `runc run`) belongs to the host's init,
 * so its exit cannot be awaited; it is polled, with its start time guarding against a reused
 * pid, and the exit code is then read from the file the monitor wrote.
 */
import { isRunning, processStartTime } from '../host/proc.js';

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

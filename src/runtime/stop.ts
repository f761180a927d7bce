/** Nomad's stop for any runtime: the kill signal first, SIGKILL of the whole task after the timeout. */
import type { ExitStatus } from './runtime.js';

/** Calls `signal()`, then `killAll()` if the task has not exited within `timeoutMs`; resolves on exit. */
export async function signalThenKill(signal: () => void, killAll: () => void, exited: Promise<ExitStatus>, timeoutMs: number): Promise<ExitStatus> {
  signal();
  const timer = setTimeout(killAll, timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

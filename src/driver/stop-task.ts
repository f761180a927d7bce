/** StopTask, SignalTask and DestroyTask: ending a task and releasing what it holds. */
import { failure } from '../errors.js';
import { removeTree } from '../host/fs.js';
import type { Logger } from '../log/logger.js';
import { removeTaskGcRoot } from '../nix/gc-roots.js';
import type { SharedKind } from './shared-resources.js';
import { parseSignal } from './signals.js';
import { releaseCgroup } from './task-cgroup.js';
import type { TaskHandle } from './task.js';
import type { TaskStore } from './task-store.js';

/**
 * `signal` (the task's kill_signal; SIGINT when empty, as Nomad's own drivers do) to the
 * command, SIGKILL of every task process after `timeoutMs`. A task that has exited already is
 * stopped. Releases nothing: destroyTask does.
 */
export async function stopTask(handle: TaskHandle, signal: string, timeoutMs: number): Promise<void> {
  if (handle.state === 'exited') return;
  await handle.launched.stop(parseSignal(signal === '' ? 'SIGINT' : signal), timeoutMs);
}

/** `signal` to the task's command; a `failed_precondition` DriverError once the task has exited. */
export function signalTask(handle: TaskHandle, signal: string): void {
  if (handle.state === 'exited') {
    throw failure('signal task', 'the task has exited', { code: 'failed_precondition' });
  }
  handle.launched.signal(parseSignal(signal));
}

export interface DestroyContext {
  readonly gcRootsDir: string;
  readonly logger: Logger;
  /** Task `holder` lets go of a shared store view or /etc dir (driver/shared-release.ts). */
  readonly releaseShared: (kind: SharedKind, key: string, holder: string) => Promise<void>;
}

/**
 * Kills the task when `force` (a running task is refused otherwise), waits for its exit, then
 * forgets it and removes its runtime state, cgroup, GC root and state dir and lets go of its
 * store view and /etc dir. An unknown task is destroyed already: nothing of it is left.
 */
export async function destroyTask(tasks: TaskStore, taskId: string, force: boolean, context: DestroyContext): Promise<void> {
  const handle = tasks.find(taskId);
  if (handle === undefined) return;
  if (handle.state === 'running') {
    if (!force) throw failure('destroy task', 'the task is still running', { code: 'failed_precondition', fix: 'stop the task first' });
    await handle.launched.kill();
  }
  await handle.exited;
  tasks.delete(taskId);
  const { persisted } = handle;
  await handle.launched.dispose();
  if (handle.cgroup !== undefined) await releaseCgroup(handle.cgroup);
  await removeTaskGcRoot(context.gcRootsDir, persisted.key);
  await removeTree(persisted.stateDir);
  await context.releaseShared('views', persisted.viewKey, taskId);
  await context.releaseShared('etc', persisted.etcKey, taskId);
  context.logger.debug('task destroyed', { task_id: taskId });
}

/**
 * The tasks this plugin process knows, by Nomad task id, and the keys of those whose StartTask
 * is running (their state exists before they are registered). No I/O.
 */
import { DriverError, TASK_NOT_FOUND_MESSAGE, failure, quote } from '../errors.js';
import { taskKey, type TaskHandle } from './task.js';

export class TaskStore {
  private readonly tasks = new Map<string, TaskHandle>();
  private readonly starting = new Set<string>();

  /** The task, or a `not_found` DriverError (Nomad's "task not found" text). */
  get(taskId: string): TaskHandle {
    const handle = this.tasks.get(taskId);
    if (handle === undefined) throw new DriverError(TASK_NOT_FOUND_MESSAGE, { code: 'not_found' });
    return handle;
  }

  find(taskId: string): TaskHandle | undefined {
    return this.tasks.get(taskId);
  }

  has(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  add(taskId: string, handle: TaskHandle): void {
    this.tasks.set(taskId, handle);
  }

  delete(taskId: string): void {
    this.tasks.delete(taskId);
  }

  /**
   * Marks `taskId` as starting until `start` settles, then registers what it returns. A known
   * or starting id is an `already_exists` DriverError.
   */
  async starts(taskId: string, start: () => Promise<TaskHandle>): Promise<TaskHandle> {
    const key = taskKey(taskId);
    if (this.tasks.has(taskId) || this.starting.has(key)) {
      throw failure('start task', `task with ID ${quote(taskId)} already started`, { code: 'already_exists' });
    }
    this.starting.add(key);
    const handle = await start().finally(() => this.starting.delete(key));
    this.tasks.set(taskId, handle);
    return handle;
  }

  /** True while a task of this key is starting or known (the orphan sweep leaves it). */
  isLiveKey(key: string): boolean {
    return this.starting.has(key) || [...this.tasks.values()].some((t) => t.persisted.key === key);
  }

  /** The cgroup paths of the known tasks. */
  liveCgroups(): Set<string> {
    return new Set([...this.tasks.values()].flatMap((t) => [t.persisted.cgroup.path]));
  }
}

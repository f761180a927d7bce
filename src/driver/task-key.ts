/** A stable, file-name-safe key for a task id (used for state dirs and GC roots). Pure. */
export function taskKey(taskId: string): string {
  return taskId.replace(/[^A-Za-z0-9._-]/g, '_');
}

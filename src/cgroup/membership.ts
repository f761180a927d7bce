/** Whether a process is in a task's cgroup, from the host's view of /proc/<pid>/cgroup. */
import { cgroupFileOf } from '../host/proc.js';
import { procCgroupIn, type TaskCgroupLocation } from './placement.js';

/** True when `pid` exists and is in `location` (or a cgroup below it). */
export function processInCgroup(pid: number, location: TaskCgroupLocation): boolean {
  const text = cgroupFileOf(pid);
  return text !== undefined && procCgroupIn(text, location);
}

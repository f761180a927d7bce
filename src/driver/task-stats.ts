/** The TaskStats loop: samples of a task's cgroup, with CPU percentages between samples. */
import { failure } from '../errors.js';
import { cpuUsage, type CpuUsage, type TaskCgroupStats } from '../cgroup/stats.js';
import { nodeCompute } from '../host/cpu-info.js';
import { sleep } from './sleep.js';
import type { TaskHandle } from './task.js';

/** One TaskStats sample: the cgroup's counters and the CPU percentages since the last one. */
export interface TaskUsage {
  readonly timestamp: Date;
  readonly cpu: CpuUsage;
  readonly stats: TaskCgroupStats;
}

/**
 * One sample of the task's cgroup every `intervalMs` (at least 100) until the task exits or
 * any of `signals` aborts. CPU percentages need two samples: the first reports 0 for them, as
 * Nomad's own executor does. A task without a cgroup is a `failed_precondition` DriverError.
 */
export async function* taskStats(handle: TaskHandle, intervalMs: number, signals: readonly AbortSignal[]): AsyncGenerator<TaskUsage> {
  const cgroup = handle.cgroup;
  if (cgroup === undefined) throw failure('collect task stats', 'the task has no cgroup', { code: 'failed_precondition' });
  const compute = nodeCompute();
  // the files are opened once per stream, not once per sample (issue 16)
  const reader = await cgroup.openStats();
  try {
    let previous: { sample: TaskCgroupStats['cpu']; at: bigint } | undefined;
    while (!signals.some((s) => s.aborted) && handle.state === 'running') {
      const stats = reader.read();
      const at = process.hrtime.bigint();
      const cpu = cpuUsage(previous?.sample, stats.cpu, previous === undefined ? 0 : Number(at - previous.at), compute);
      previous = { sample: stats.cpu, at };
      yield { timestamp: new Date(), cpu, stats };
      await sleep(Math.max(intervalMs, 100), signals);
    }
  } finally {
    reader.close();
  }
}

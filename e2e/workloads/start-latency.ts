/**
 * The start figure of a workload: Nomad's `Started` event minus its `Received` event (ms), as
 * `nomad alloc status` lists their times, written to the test's stderr as
 * `start latency: <what>: <ms> ms` (the README's figures for the workloads come from these).
 */
import type { Allocation } from '../support/jobs.js';

interface TimedEvent {
  readonly Type: string;
  /** Unix time in ns. */
  readonly Time?: number;
}

/** Started minus Received of `task` in `alloc` (the first of each), in ms. */
export function startLatencyMs(alloc: Allocation, task: string): number {
  const events = (alloc.TaskStates?.[task]?.Events ?? []) as readonly TimedEvent[];
  const at = (type: string) => events.find((e) => e.Type === type)?.Time;
  const received = at('Received');
  const started = at('Started');
  if (received === undefined || started === undefined)
    throw new Error(`failed to read start latency: task ${JSON.stringify(task)} has no Received and Started events`);
  return Math.round((started - received) / 1e6);
}

/** Writes `start latency: <what>: <ms> ms` to stderr and returns the ms. */
export function startLatency(what: string, alloc: Allocation, task: string): number {
  const ms = startLatencyMs(alloc, task);
  process.stderr.write(`start latency: ${what}: ${ms} ms\n`);
  return ms;
}

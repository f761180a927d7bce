/**
 * OOM kills inside a running task. The kernel's OOM killer picks the largest process of the
 * task's cgroup, which under a supervisor (supervisord, s6, a shell) is usually one of its
 * programs, not the task's main process: the task runs on and its exit, if any, says nothing
 * about the kill. So the driver polls the cgroup's OOM-kill counter (memory.events `oom_kill`,
 * task-cgroup.ts `readOomKills`) while the task runs and reports each growth as a task event
 * (`nomad alloc status` lists it as a "Driver" event) at once; the task's exit is marked
 * `oomKilled` only when its main process itself died of the kernel's SIGKILL (`oomKilledAtExit`).
 */

/** How often a running task's OOM-kill counter is read (one small cgroup file per task). */
export const OOM_POLL_MS = 1000;

export interface OomWatch {
  /** Stops polling (also done when `until` settles). */
  stop(): void;
}

/**
 * The running watches of each period, polled together by one timer: with one timer and a
 * promise chain per task, 50 idle tasks cost the plugin 1.6 % of a core; the reads themselves
 * (one pread each, TaskCgroup.openOomKills) are microseconds (issue 16, `npm run bench:stats`).
 */
const pollers = new Map<number, { readonly timer: NodeJS.Timeout; readonly polls: Set<() => void> }>();

function schedule(periodMs: number, poll: () => void): () => void {
  let group = pollers.get(periodMs);
  if (group === undefined) {
    const polls = new Set<() => void>();
    const timer = setInterval(() => {
      for (const each of polls) each();
    }, periodMs);
    timer.unref();
    group = { timer, polls };
    pollers.set(periodMs, group);
  }
  const { timer, polls } = group;
  polls.add(poll);
  return () => {
    polls.delete(poll);
    if (polls.size === 0 && pollers.get(periodMs)?.timer === timer) {
      clearInterval(timer);
      pollers.delete(periodMs);
    }
  };
}

/**
 * Calls `read` every `periodMs` (on a timer shared by every watch of that period) until `until`
 * settles, and `report(killed)` with the number of new kills each time the counter grew past
 * `since` (and past what was reported). A read that throws or gives undefined (the cgroup
 * gone, a kernel that does not count) is skipped.
 */
export function watchOomKills(options: {
  readonly read: () => number | undefined;
  readonly since: number;
  readonly until: Promise<unknown>;
  readonly report: (killed: number) => void;
  readonly periodMs?: number;
}): OomWatch {
  let seen = options.since;
  let stopped = false;
  const unschedule = schedule(options.periodMs ?? OOM_POLL_MS, () => {
    let count: number | undefined;
    try {
      count = options.read();
    } catch {
      return;
    }
    if (stopped || count === undefined || count <= seen) return;
    const killed = count - seen;
    seen = count;
    options.report(killed);
  });
  const stop = () => {
    stopped = true;
    unschedule();
  };
  void options.until.then(stop, stop);
  return { stop };
}

/** The task event of `killed` new OOM kills in a task whose hard memory limit is `limitBytes`. */
export function oomKillEventMessage(killed: number, limitBytes: number | undefined): string {
  const processes = killed === 1 ? '1 process' : `${killed} processes`;
  const limit = limitBytes === undefined ? 'its memory limit' : `its memory limit of ${Math.round(limitBytes / (1024 * 1024))} MiB`;
  return `OOM kill: the kernel killed ${processes} of the task, over ${limit}; raise resources.memory (or memory_max)`;
}

/**
 * Whether a task's exit is an OOM kill: the runtime says so, or the main process died of
 * SIGKILL while the cgroup's OOM-kill counter grew (`killsAtExit` > `killsAtStart`). A kill
 * of another process of the task, after which the main process exited on its own or by
 * another signal, is not (it was reported as a task event when it happened).
 */
export function oomKilledAtExit(
  status: { readonly oomKilled: boolean; readonly signal: number },
  killsAtStart: number,
  killsAtExit: number | undefined,
): boolean {
  return status.oomKilled || (status.signal === 9 && (killsAtExit ?? 0) > killsAtStart);
}

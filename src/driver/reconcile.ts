/**
 * Tasks Nomad will never ask about again, and how to remove what they left.
 *
 * The rule (README "Recovery"): when the long-lived plugin instance starts, Nomad calls
 * RecoverTask for every task it still has a handle for — at once after a plugin crash, early
 * in the agent's start after an agent restart. `orphan_grace` after that start, whatever is
 * left in state_dir/tasks that no StartTask or RecoverTask of this process claimed belongs to a
 * task Nomad forgot (its allocation was collected while the agent was down, or the client's
 * state was wiped): its processes are killed (only processes whose start time matches the
 * record, or its own cgroup when no live task shares it), runc's record, cgroup, GC root and
 * state dir are removed, then GC roots without a task and store views and /etc dirs no task
 * holds (each removed under its SharedResources lock, so never while a start is making or
 * binding it). A failed RecoverTask sweeps its task at once (Nomad then starts it again).
 */
import { join } from 'node:path';
import { openTaskCgroup } from '../cgroup/task-cgroup.js';
import { errorMessage } from '../errors.js';
import { listEntries, readJsonFile, removeTree } from '../host/fs.js';
import { sharedFilesKeyOf } from '../host/task-files.js';
import { signalProcess } from '../host/proc.js';
import type { Logger } from '../log/logger.js';
import { listTaskGcRoots, removeTaskGcRoot } from '../nix/gc-roots.js';
import { listStoreViews, pruneStoreViewLeftovers, removeStoreView } from '../nix/store-view.js';
import { sameProcess } from '../runtime/detached-exit.js';
import type { Runtime } from '../runtime/runtime.js';
import { decodePersistedTask, type PersistedTask } from './persisted-task.js';
import type { SharedResources } from './shared-resources.js';
import { PERSISTED_TASK_FILE, releaseCgroup } from './start-task.js';

export interface SweepContext {
  readonly stateDir: string;
  readonly gcRootsDir: string;
  readonly logger: Logger;
  readonly runtimeNamed: (name: 'bwrap' | 'runc') => Runtime;
  /** Cgroup paths of the tasks this process holds (a restarted task reuses Nomad's cgroup). */
  readonly liveCgroups: ReadonlySet<string>;
}

/** Removes everything of one task that is gone or forgotten; each step is best-effort and logged. */
export async function sweepTask(task: PersistedTask, context: SweepContext): Promise<void> {
  const { logger } = context;
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      logger.warn(`failed to ${what} of a forgotten task`, { task_id: task.taskId, err: errorMessage(error) });
    }
  };
  // its PID 1 (checked against the recorded start time): the task's pid namespace dies with it
  if (sameProcess(task.initPid, task.initStartTime)) signalProcess(task.initPid, 'SIGKILL');
  if (sameProcess(task.pid, task.pidStartTime)) signalProcess(task.pid, 'SIGKILL');
  await step('forget the runtime record', () => context.runtimeNamed(task.runtime).forget(task.key));
  const cgroup = task.cgroup;
  if (cgroup !== undefined && !context.liveCgroups.has(cgroup.path)) await step('remove the cgroup', () => releaseCgroup(openTaskCgroup(cgroup)));
  await step('remove the GC root', () => removeTaskGcRoot(context.gcRootsDir, task.gcRootKey));
  await step('remove the state dir', () => removeTree(task.stateDir));
}

export interface ReconcileContext extends SweepContext {
  /** True for the state key (= GC root key) of a task this process holds or is starting, asked at the time of each removal. */
  readonly isLiveKey: (key: string) => boolean;
  /** Who holds which store view and /etc dir: one no task holds is removed under its lock (shared-resources.ts). */
  readonly shared: SharedResources;
}

export interface ReconcileReport {
  readonly tasks: string[];
  readonly gcRoots: string[];
  readonly views: string[];
  readonly etc: string[];
}

/** The sweep described at the top of this module. */
export async function reconcile(context: ReconcileContext): Promise<ReconcileReport> {
  const report: ReconcileReport = { tasks: [], gcRoots: [], views: [], etc: [] };
  const tasksDir = join(context.stateDir, 'tasks');
  const entries = await listEntries(tasksDir).catch(() => []);
  for (const entry of entries) {
    if (entry.kind !== 'directory' || context.isLiveKey(entry.name)) continue;
    const raw = await readJsonFile<{ taskId?: unknown }>(join(tasksDir, entry.name, PERSISTED_TASK_FILE));
    let task: PersistedTask | undefined;
    try {
      task = raw === undefined ? undefined : decodePersistedTask(Buffer.from(JSON.stringify(raw)), String(raw.taskId));
    } catch {
      task = undefined;
    }
    if (task === undefined) {
      // a start that never finished (the record is written last): nothing else of it is live
      await removeTree(join(tasksDir, entry.name));
    } else {
      await sweepTask(task, context);
    }
    report.tasks.push(entry.name);
  }
  for (const key of await listTaskGcRoots(context.gcRootsDir).catch(() => [])) {
    if (context.isLiveKey(key)) continue;
    await removeTaskGcRoot(context.gcRootsDir, key);
    report.gcRoots.push(key);
  }
  const views = join(context.stateDir, 'views');
  for (const key of await listStoreViews(views).catch(() => [])) {
    if (await context.shared.removeUnheld('views', key, () => removeStoreView(views, key))) report.views.push(key);
  }
  await pruneStoreViewLeftovers(views, (key, remove) => context.shared.removeUnheld('views', key, remove)).catch(() => []);
  const etc = join(context.stateDir, 'etc');
  for (const entry of await listEntries(etc).catch(() => [])) {
    if (entry.kind !== 'directory') continue;
    const key = sharedFilesKeyOf(entry.name);
    const remove = () => removeTree(join(etc, entry.name));
    if (key === undefined ? (await remove(), true) : await context.shared.removeUnheld('etc', key, remove)) report.etc.push(entry.name);
  }
  return report;
}

/**
 * Tasks Nomad will never ask about again, and how to remove what they left.
 *
 * The rule (README "Recovery", "Driver state and the orphan sweep"): when the long-lived
 * plugin instance starts, Nomad calls RecoverTask for every task it still has a handle for —
 * at once after a plugin crash, early in the agent's start after an agent restart.
 * `orphan_grace` after that start (and not before the instance knows its own Nomad node, which
 * only StartTask and RecoverTask tell it), what is left that no StartTask or RecoverTask of
 * this process claimed *and that carries an owner mark of this node* (ownership.ts) belongs to
 * a task Nomad forgot: its processes are killed (only processes proven to be the task's own:
 * start time, the runtime's executable and a mark of the task, the task's cgroup), runc's
 * record, the task's cgroup (only the one the driver itself would use for it), its GC root and
 * state dir are removed, then this node's marks on store views and /etc dirs no task uses, and
 * such an entry once no node marks it. Entries without a mark of this node (another client on
 * a shared state_dir, an older plugin version, anyone else's files) are left and logged once.
 * Store views and /etc dirs are removed under their SharedResources lock (shared-resources.ts),
 * so never while a start of this process holds one or is making or binding it. A failed
 * RecoverTask sweeps its task at once (Nomad then starts it again).
 */
import { join } from 'node:path';
import { processInCgroup } from '../cgroup/membership.js';
import { openTaskCgroup } from '../cgroup/task-cgroup.js';
import { errorMessage } from '../errors.js';
import { listEntries, readJsonFile, removeTree } from '../host/fs.js';
import type { Logger } from '../log/logger.js';
import { listTaskGcRoots, removeTaskGcRoot } from '../nix/gc-roots.js';
import { listStoreViews, pruneStoreViewLeftovers, removeStoreView } from '../nix/store-view.js';
import type { RecoveryRecord, Runtime } from '../runtime/runtime.js';
import { ownerOf, sharedOwners, unmarkShared, type SharedKind } from './ownership.js';
import { decodeTaskFile, PERSISTED_TASK_FILE, type PersistedTask } from './persisted-task.js';
import type { SharedResources } from './shared-resources.js';
import { releaseCgroup } from './task-cgroup.js';

export interface SweepContext {
  readonly stateDir: string;
  readonly gcRootsDir: string;
  readonly logger: Logger;
  readonly runtimeNamed: (name: 'bwrap' | 'runc') => Runtime;
  /** Cgroup paths of the tasks this process holds (a restarted task reuses Nomad's cgroup). */
  readonly liveCgroups: ReadonlySet<string>;
}

/** What a runtime gets to recover or kill `task`: the validated record and a check of its cgroup. */
export function recoveryRecord(task: PersistedTask): RecoveryRecord {
  const cgroup = task.cgroup;
  return { ...task, inTaskCgroup: (pid) => processInCgroup(pid, cgroup) };
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
  const runtime = context.runtimeNamed(task.runtime);
  // its PID 1 (its pid namespace dies with it) and monitor, each only when provably the task's
  await step('kill the processes', async () => runtime.killOrphan(recoveryRecord(task)));
  await step('forget the runtime record', () => runtime.forget(task.key));
  const cgroup = task.cgroup;
  if (!context.liveCgroups.has(cgroup.path)) await step('remove the cgroup', () => releaseCgroup(openTaskCgroup(cgroup)));
  await step('remove the GC root', () => removeTaskGcRoot(context.gcRootsDir, task.key));
  await step('remove the state dir', () => removeTree(task.stateDir));
}

export interface ReconcileContext extends SweepContext {
  /** This plugin instance's Nomad node (learnt from StartTask/RecoverTask; never empty here). */
  readonly nodeId: string;
  /** True for the state key (= GC root key) of a task this process holds or is starting, asked at the time of each removal. */
  readonly isLiveKey: (key: string) => boolean;
  /** Who holds which store view and /etc dir: one no task holds is removed under its lock (shared-resources.ts). */
  readonly shared: SharedResources;
  /** Logs (once per plugin process and entry) that `entry` was left because it is not provably ours. */
  readonly leftAlone: (entry: string, why: string) => void;
}

export interface ReconcileReport {
  readonly tasks: string[];
  readonly gcRoots: string[];
  readonly views: string[];
  readonly etc: string[];
  /** What interrupted view builds and removals left in the views dir (`.tmp-*`, `.trash-*`, a marker without its view). */
  readonly viewLeftovers: string[];
}

const KEY = /^[A-Za-z0-9._-]+$/;

/** The sweep described at the top of this module. */
export async function reconcile(context: ReconcileContext): Promise<ReconcileReport> {
  const report: ReconcileReport = { tasks: [], gcRoots: [], views: [], etc: [], viewLeftovers: [] };
  const { nodeId, leftAlone } = context;
  const notOurs = (mark: { nodeId: string } | undefined) =>
    mark === undefined ? 'it carries no owner mark of this plugin' : `it belongs to Nomad node ${JSON.stringify(mark.nodeId)}, not ${JSON.stringify(nodeId)}`;
  const tasksDir = join(context.stateDir, 'tasks');
  for (const entry of await listEntries(tasksDir).catch(() => [])) {
    if (entry.kind !== 'directory' || context.isLiveKey(entry.name) || !KEY.test(entry.name)) continue;
    const dir = join(tasksDir, entry.name);
    const mark = await ownerOf(dir);
    if (mark?.nodeId !== nodeId) {
      leftAlone(dir, notOurs(mark));
      continue;
    }
    const raw = await readJsonFile<unknown>(join(dir, PERSISTED_TASK_FILE));
    let task: PersistedTask | undefined;
    try {
      task = raw === undefined ? undefined : decodeTaskFile(raw, context.stateDir);
    } catch (error) {
      leftAlone(dir, `its task record is not valid: ${errorMessage(error)}`);
      continue;
    }
    if (task === undefined) {
      // a start that never finished (the record is written last): nothing else of it is live
      await removeTree(dir);
    } else if (task.key !== entry.name) {
      leftAlone(dir, `its record is of task ${JSON.stringify(task.taskId)}, whose key is ${JSON.stringify(task.key)}`);
      continue;
    } else {
      await sweepTask(task, context);
    }
    report.tasks.push(entry.name);
  }
  for (const key of await listTaskGcRoots(context.gcRootsDir).catch(() => [])) {
    if (context.isLiveKey(key)) continue;
    const dir = join(context.gcRootsDir, key);
    const mark = await ownerOf(dir);
    if (mark?.nodeId !== nodeId) {
      leftAlone(dir, notOurs(mark));
      continue;
    }
    await removeTaskGcRoot(context.gcRootsDir, key);
    report.gcRoots.push(key);
  }
  const views = join(context.stateDir, 'views');
  // a plugin killed while it built or removed a view left its .tmp-/.trash- copy or a marker:
  // removed under the key's lock while no task of this process holds the key, and only when
  // this node alone marks it (another client on a shared state_dir may be building it now)
  const pruned = await pruneStoreViewLeftovers(views, async (key, remove) => {
    const owners = await sharedOwners(context.stateDir, 'views', key);
    if (owners.length === 0 || owners.some((o) => o !== nodeId)) return false;
    return context.shared.removeUnheld('views', key, remove);
  }).catch(() => []);
  report.viewLeftovers.push(...pruned);
  const viewKeys = await listStoreViews(views).catch(() => []);
  const etcKeys = (await listEntries(join(context.stateDir, 'etc')).catch(() => []))
    .filter((e) => e.kind === 'directory' && /^[0-9a-f]{32}$/.test(e.name))
    .map((e) => e.name);
  const shared: [SharedKind, string[], string[], (key: string) => Promise<void>][] = [
    ['views', viewKeys, report.views, (key) => removeStoreView(views, key)],
    ['etc', etcKeys, report.etc, (key) => removeTree(join(context.stateDir, 'etc', key))],
  ];
  for (const [kind, keys, removed, remove] of shared) {
    for (const key of keys) {
      const owners = await sharedOwners(context.stateDir, kind, key);
      if (!owners.includes(nodeId)) {
        leftAlone(
          join(context.stateDir, kind, key),
          owners.length === 0 ? 'it carries no owner mark of this plugin' : `it is used by Nomad node(s) ${owners.map((o) => JSON.stringify(o)).join(', ')}`,
        );
        continue;
      }
      // under the key's lock, and only while no task of this process holds it
      await context.shared.removeUnheld(kind, key, async () => {
        if (!(await unmarkShared(context.stateDir, kind, key, nodeId))) return;
        await remove(key);
        removed.push(key);
      });
    }
  }
  return report;
}

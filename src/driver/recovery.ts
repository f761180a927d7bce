/**
 * RecoverTask and the orphan sweep: taking over tasks an earlier plugin process launched, and
 * removing what forgotten tasks left behind. Both need the Nomad node this instance serves,
 * which only StartTask and RecoverTask name (TaskConfig.node_id).
 */
import { join } from 'node:path';
import type { PluginConfig } from '../config/plugin-config.js';
import { errorMessage, failure, quote } from '../errors.js';
import { entryKind } from '../host/fs.js';
import { processStartTime, realUidOf } from '../host/proc.js';
import { processInCgroup } from '../cgroup/membership.js';
import { openTaskCgroup } from '../cgroup/task-cgroup.js';
import type { Logger } from '../log/logger.js';
import type { LaunchedTask, Runtime } from '../runtime/runtime.js';
import { decodePersistedTask, NODE_ID, type PersistedTask } from './persisted-task.js';
import { reconcile, recoveryRecord, sweepTask, type SweepContext } from './reconcile.js';
import { markDir, markShared, owner, ownerOf, type Owner } from './ownership.js';
import type { SharedKind, SharedResources } from './shared-resources.js';
import { adoptTask } from './start-task.js';
import type { TaskRequest } from './task.js';
import type { TaskStore } from './task-store.js';

/** What recovery and the sweep read and change of the driver. */
export interface RecoveryContext {
  readonly logger: Logger;
  /** The plugin config as of now (state_dir, gc_roots_dir). */
  readonly config: () => PluginConfig;
  readonly tasks: TaskStore;
  readonly shared: SharedResources;
  /** The runtime of that name, for taking over and sweeping tasks (runtime/select.ts, purpose `recover task`). */
  readonly runtimeNamed: (name: 'bwrap' | 'runc') => Runtime;
  /** Publishes a task event of a recovered task (its OOM kills, driver/oom-watch.ts). */
  readonly event?: (task: TaskRequest, message: string) => void;
}

/**
 * The orphan sweep (reconcile.ts) of the Nomad node this instance serves: once, a grace period
 * after the long-lived instance got its config. Until a StartTask or RecoverTask named the node
 * it removes nothing; a sweep that was due meanwhile runs once the node is known.
 */
export class OrphanSweep {
  private node: Owner | undefined;
  private sweepDue = false;
  private timer: NodeJS.Timeout | undefined;
  /** Entries the sweep left because they are not provably this node's, each logged once. */
  private readonly leftAlone = new Set<string>();

  constructor(private readonly context: RecoveryContext) {}

  /** The node's id, '' until a task named it. */
  get nodeId(): string {
    return this.node?.nodeId ?? '';
  }

  /** Learns the node from a task's request: the first valid node id wins, later others are logged. */
  learnNode(request: TaskRequest): void {
    const { logger } = this.context;
    if (request.nodeId === '') return;
    if (!NODE_ID.test(request.nodeId)) {
      logger.warn('a task names a node id that is not a Nomad node id; ignored', { node_id: request.nodeId });
      return;
    }
    if (this.node === undefined) {
      this.node = owner(request.nodeId, request.nodeName);
      logger.debug('serving Nomad node', { node_id: request.nodeId, node_name: request.nodeName });
      if (this.sweepDue) {
        this.sweepDue = false;
        setTimeout(() => void this.sweepNow(), 1000).unref();
      }
    } else if (this.node.nodeId !== request.nodeId) {
      logger.warn('a task names another Nomad node than earlier tasks; the orphan sweep keeps to the first', {
        node_id: this.node.nodeId,
        task_node_id: request.nodeId,
      });
    }
  }

  /** Runs the sweep once, `graceMs` from now (later calls change nothing). */
  schedule(graceMs: number): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => void this.sweepNow(), graceMs);
    this.timer.unref();
  }

  /** What sweeping one task needs: the dirs, the runtimes and the cgroups of live tasks. */
  sweepContext(): SweepContext {
    const config = this.context.config();
    return {
      stateDir: config.state_dir,
      gcRootsDir: config.gc_roots_dir,
      logger: this.context.logger,
      runtimeNamed: this.context.runtimeNamed,
      liveCgroups: this.context.tasks.liveCgroups(),
    };
  }

  /** The sweep, now; postponed until the node is known. Failures are logged, never thrown. */
  async sweepNow(): Promise<void> {
    const { logger, tasks, shared } = this.context;
    const node = this.node;
    if (node === undefined) {
      this.sweepDue = true;
      logger.info("orphan sweep postponed: no StartTask or RecoverTask has named this client's Nomad node yet");
      return;
    }
    try {
      const report = await reconcile({
        ...this.sweepContext(),
        nodeId: node.nodeId,
        leftAlone: (entry, why) => {
          if (this.leftAlone.has(entry)) return;
          this.leftAlone.add(entry);
          logger.info("orphan sweep left an entry that is not provably this node's", { entry, reason: why });
        },
        isLiveKey: (key) => tasks.isLiveKey(key),
        shared,
      });
      const removed = report.tasks.length + report.gcRoots.length + report.views.length + report.etc.length + report.viewLeftovers.length;
      if (removed > 0)
        logger.info('removed what forgotten tasks left behind', {
          tasks: report.tasks,
          gc_roots: report.gcRoots,
          views: report.views,
          etc: report.etc,
          view_leftovers: report.viewLeftovers,
        });
      else logger.debug('orphan sweep found nothing to remove');
    } catch (error) {
      logger.error('failed to sweep forgotten tasks', { err: errorMessage(error) });
    }
  }
}

/** What RecoverTask needs beyond the recovery context. */
export interface RecoverContext extends RecoveryContext {
  readonly sweep: OrphanSweep;
  /** Task `holder` lets go of a shared store view or /etc dir (driver/shared-release.ts). */
  readonly releaseShared: (kind: SharedKind, key: string, holder: string) => Promise<void>;
}

/**
 * Rebuilds a task of an earlier plugin process from its driver_state alone and registers it; a
 * no-op for a task this process knows (also when a concurrent call registered it first). A
 * task that is gone without an exit record is swept (nothing of it stays) and the call fails,
 * so Nomad starts it again. A record of another node, or of another user than the live init
 * runs as, is an `invalid_argument` DriverError and nothing is swept.
 */
export async function recoverTask(taskId: string, driverState: Uint8Array, request: () => TaskRequest, context: RecoverContext): Promise<void> {
  const { tasks, logger } = context;
  if (tasks.has(taskId)) return;
  // nothing in driver_state is trusted: paths are derived, keys and the cgroup checked
  const persisted = decodePersistedTask(driverState, { taskId, stateRoot: context.config().state_dir });
  const taskRequest = request();
  const who = owner(taskRequest.nodeId, taskRequest.nodeName);
  await checkRecoveredOwner(persisted, who);
  checkRecoveredUser(persisted);
  context.sweep.learnNode(taskRequest);
  const runtime = context.runtimeNamed(persisted.runtime);
  // the task holds its view and /etc dir again before anything can await: a task of the same
  // closure destroyed meanwhile must not remove what this one has bound
  const noop = async () => undefined;
  await context.shared.acquire('views', persisted.viewKey, taskId, noop);
  await context.shared.acquire('etc', persisted.etcKey, taskId, noop);
  let launched: LaunchedTask;
  try {
    launched = await runtime.recover(recoveryRecord(persisted));
  } catch (error) {
    await sweepTask(persisted, context.sweep.sweepContext());
    if (!tasks.has(taskId)) {
      for (const [kind, key] of [
        ['views', persisted.viewKey],
        ['etc', persisted.etcKey],
      ] as const) {
        await context
          .releaseShared(kind, key, taskId)
          .catch((e: unknown) =>
            logger.warn(`failed to release the ${kind} entry of a task that could not be recovered`, { task_id: taskId, err: errorMessage(e) }),
          );
      }
    }
    throw error;
  }
  if (tasks.has(taskId)) return; // a concurrent RecoverTask won
  await markRecovered(persisted, who, context);
  const cgroup = openTaskCgroup(persisted.cgroup);
  const event = context.event;
  const handle = adoptTask(taskRequest, launched, persisted, cgroup, undefined, event === undefined ? undefined : (message) => event(taskRequest, message));
  tasks.add(taskId, handle);
  logger.info('task recovered', { task_id: taskId, pid: persisted.pid, init_pid: persisted.initPid, runtime: persisted.runtime });
  void handle.exited.then((status) =>
    logger.info('task exited', { task_id: taskId, exit_code: status.exitCode, signal: status.signal, oom_killed: status.oomKilled }),
  );
}

/**
 * Refuses a record of another node: the one in driver_state (version 3) or the owner mark on
 * the task's state dir (a state_dir shared by two clients). Nothing is swept then.
 */
async function checkRecoveredOwner(persisted: PersistedTask, who: Owner): Promise<void> {
  const mark = await ownerOf(persisted.stateDir);
  for (const [what, nodeId] of [
    ['driver_state field nodeId', persisted.nodeId],
    [`the owner mark in ${persisted.stateDir}`, mark?.nodeId ?? ''],
  ] as const) {
    if (nodeId !== '' && nodeId !== who.nodeId) {
      throw failure('recover task', `${what} names Nomad node ${quote(nodeId)}, and this task runs on node ${quote(who.nodeId)}`, {
        code: 'invalid_argument',
        fix: 'give every Nomad client on a host its own state_dir; Nomad starts the task again',
      });
    }
  }
}

/**
 * Commands exec'd into a recovered task run as driver_state's user: when the task's init is
 * alive (its start time, in the task's cgroup), that user must be the one it runs as.
 */
function checkRecoveredUser(persisted: PersistedTask): void {
  const { initPid, initStartTime, cgroup, user } = persisted;
  if (processStartTime(initPid) !== initStartTime || !processInCgroup(initPid, cgroup)) return;
  const uid = realUidOf(initPid);
  if (uid === undefined || uid === user.uid) return;
  throw failure('recover task', `driver_state field user.uid ${quote(String(user.uid))} is not the uid ${uid} the task's init ${initPid} runs as`, {
    code: 'invalid_argument',
    fix: "check that only root can write the Nomad client's data_dir, where Nomad keeps driver_state; Nomad starts the task again",
  });
}

/** Marks what a recovered task uses as this node's (tasks of the previous plugin version carry no marks). */
async function markRecovered(persisted: PersistedTask, who: Owner, context: RecoveryContext): Promise<void> {
  try {
    const { state_dir: stateRoot, gc_roots_dir: gcRoots } = context.config();
    if ((await ownerOf(persisted.stateDir)) === undefined && (await entryKind(persisted.stateDir)) === 'directory') await markDir(persisted.stateDir, who);
    const gcRoot = join(gcRoots, persisted.key);
    if ((await ownerOf(gcRoot)) === undefined && (await entryKind(gcRoot)) === 'directory') await markDir(gcRoot, who);
    await markShared(stateRoot, 'views', persisted.viewKey, who);
    await markShared(stateRoot, 'etc', persisted.etcKey, who);
  } catch (error) {
    context.logger.warn("failed to mark a recovered task as this node's", { task_id: persisted.taskId, err: errorMessage(error) });
  }
}

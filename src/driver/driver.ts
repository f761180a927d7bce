/**
 * NixDriver: the plugin's behaviour behind Nomad's BasePlugin and Driver RPCs, one thin method
 * per call. It knows nothing of gRPC or protobuf (rpc/ translates); it owns the plugin config,
 * the fingerprint loop and the task-event hub.
 */
import { defaultPluginConfig, parseDurationMs, type PluginConfig } from '../config/plugin-config.js';
import { DriverError, TASK_NOT_FOUND_MESSAGE, errorMessage, failure, quote } from '../errors.js';
import { executableKind, findExecutable } from '../host/which.js';
import { runInTask, startInTask, type ExecSession } from '../host/exec-in-task.js';
import { firstChild, pathInRootOf, processStartTime, readEnviron, realUidOf } from '../host/proc.js';
import { processInCgroup } from '../cgroup/membership.js';
import { makeDir } from '../host/task-files.js';
import { entryKind, removeTree } from '../host/fs.js';
import { removeTaskGcRoot } from '../nix/gc-roots.js';
import { removeStoreView } from '../nix/store-view.js';
import { ClosureCache } from '../nix/closure-cache.js';
import { BwrapRuntime } from '../runtime/bwrap/runtime.js';
import { findRuncInit } from '../runtime/runc/init.js';
import { RuncRuntime } from '../runtime/runc/runtime.js';
import type { ExitStatus, Runtime } from '../runtime/runtime.js';
import { join } from 'node:path';
import { adoptTask, releaseCgroup, startTask } from './start-task.js';
import { decodePersistedTask, NODE_ID, type PersistedTask } from './persisted-task.js';
import { reconcile, recoveryRecord, sweepTask, type SweepContext } from './reconcile.js';
import { markDir, markShared, owner, ownerOf, unmarkShared, type Owner } from './ownership.js';
import { SharedResources, type SharedKind } from './shared-resources.js';
import { openTaskCgroup } from '../cgroup/task-cgroup.js';
import { detectCgroups } from '../cgroup/detect.js';
import type { CgroupVersion } from '../cgroup/limits.js';
import { cpuUsage, type CpuUsage, type TaskCgroupStats } from '../cgroup/stats.js';
import { nodeCompute } from '../host/cpu-info.js';
import { TaskHandle, taskKey, type StartRequest, type TaskRequest } from './task.js';
import { planExec } from './exec-task.js';
import { isLevel, type Level } from '../log/hclog-format.js';
import type { Logger } from '../log/logger.js';
import { PLUGIN_VERSION } from '../version.js';
import { CAPABILITIES, type DriverCapabilities } from './capabilities.js';
import { TaskEventHub } from './events.js';
import { evaluateFingerprint, fingerprintChanged, type Fingerprint } from './fingerprint.js';
import type { HostProbe } from './probe-host.js';

/** One TaskStats sample: the cgroup's counters and the CPU percentages since the last one. */
export interface TaskUsage {
  readonly timestamp: Date;
  readonly cpu: CpuUsage;
  readonly stats: TaskCgroupStats;
}

export interface NixDriverOptions {
  readonly logger: Logger;
  readonly probe: HostProbe;
  /** Applies the plugin config's log_level (empty: keep the level from the environment). */
  readonly setLogLevel?: (level: Level) => void;
  /** Nomad's builtin drivers re-send their fingerprint every 30 s. */
  readonly fingerprintPeriodMs?: number;
  /** How often health is re-checked, so a change is reported without waiting a full period. */
  readonly healthCheckPeriodMs?: number;
}

/** What ExecTask returns: the command's output and how it ended. */
export interface ExecResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exit: ExitStatus;
}

/** A command running in a task for `nomad alloc exec` (input, resize, kill, exit). */
export type { ExecSession } from '../host/exec-in-task.js';

/** Where an exec'd command's output goes. */
export interface ExecOutput {
  readonly stdout: (data: Buffer) => void;
  readonly stderr: (data: Buffer) => void;
}

/** Facts Nomad passes in SetConfig (absent during the agent's config-validation launch). */
export interface AgentConfig {
  readonly clientMinPort?: number;
  readonly clientMaxPort?: number;
}

export class NixDriver {
  readonly events = new TaskEventHub();
  private readonly logger: Logger;
  private readonly probe: HostProbe;
  private readonly setLogLevel: ((level: Level) => void) | undefined;
  private readonly fingerprintPeriodMs: number;
  private readonly healthCheckPeriodMs: number;
  /** Replaced wholesale by setConfig; read by every call. */
  private currentConfig: PluginConfig = defaultPluginConfig();
  private agent: AgentConfig | undefined;
  private readonly shutdownController = new AbortController();
  /** Tasks this plugin process knows, by Nomad task id. */
  private readonly tasks = new Map<string, TaskHandle>();
  /** Who holds which store view and /etc dir: starting, running and recovering tasks. */
  private readonly shared = new SharedResources();
  /**
   * Directories found searchable by task users (start-task's reachability check); forgotten
   * every minute so a permission change is noticed.
   */
  private readonly searchable = new Set<string>();
  private searchableClearedAt = Date.now();
  /** Closures of store paths, per state_dir (replaced when SetConfig changes it). */
  private closures: ClosureCache | undefined;
  /** Injected by tests; otherwise chosen from the plugin config on first use. */
  private runtimeOverride: Runtime | undefined;

  constructor(options: NixDriverOptions) {
    this.logger = options.logger;
    this.probe = options.probe;
    this.setLogLevel = options.setLogLevel;
    this.fingerprintPeriodMs = options.fingerprintPeriodMs ?? 30_000;
    this.healthCheckPeriodMs = options.healthCheckPeriodMs ?? 5_000;
  }

  get config(): PluginConfig {
    return this.currentConfig;
  }

  /**
   * True once SetConfig carried the agent's config: only the long-lived plugin instance gets it
   * (the discovery and config-validation launches do not), and only that instance is worth
   * keeping alive for a reattach when the agent dies.
   */
  get servesAgent(): boolean {
    return this.agent !== undefined;
  }

  /** Signals every long-lived stream to end (Shutdown RPC or plugin exit). */
  get shutdownSignal(): AbortSignal {
    return this.shutdownController.signal;
  }

  /**
   * SetConfig: called with the decoded `plugin "nix" { config {} }` block at every launch,
   * twice on the agent's validation launch (without agent config). Must be idempotent.
   */
  setConfig(config: PluginConfig, agent: AgentConfig | undefined): void {
    this.currentConfig = config;
    if (agent !== undefined && this.agent === undefined) this.scheduleReconcile(parseDurationMs(config.orphan_grace) ?? 300_000);
    if (agent !== undefined) this.agent = agent;
    if (config.log_level !== '' && isLevel(config.log_level)) this.setLogLevel?.(config.log_level);
    this.logger.debug('plugin configured', { runtime: config.runtime, state_dir: config.state_dir, agent_config: this.agent !== undefined });
  }

  /** Init (Nomad ≥ 2.0.4): after SetConfig on every dispense; an error would kill the plugin. */
  init(): void {
    this.logger.debug('driver initialised', { version: PLUGIN_VERSION });
  }

  /** Shutdown (Nomad ≥ 2.0.4): best-effort notice before the agent kills the plugin. Tasks keep running. */
  shutdown(): void {
    this.logger.info('driver shutting down; tasks keep running');
    this.shutdownController.abort();
  }

  capabilities(): DriverCapabilities {
    return CAPABILITIES;
  }

  /** The fingerprint as of now; a failing probe becomes an unhealthy fingerprint, never an error. */
  async fingerprint(): Promise<Fingerprint> {
    try {
      return evaluateFingerprint(await this.probe(this.currentConfig));
    } catch (error) {
      this.logger.error('failed to probe the host', { err: errorMessage(error) });
      return {
        attributes: { 'driver.nix': { kind: 'bool', value: true } },
        health: 'unhealthy',
        description: `failed to probe the host: ${errorMessage(error)}`,
      };
    }
  }

  /**
   * The Fingerprint stream: the first fingerprint at once, then one every period and one
   * whenever anything in it changes (checked every healthCheckPeriodMs). Ends when `signal`
   * aborts (Nomad closed the stream) or the driver shuts down.
   */
  async *fingerprints(signal: AbortSignal): AsyncGenerator<Fingerprint> {
    let last: Fingerprint | undefined;
    let lastSentAt = 0;
    while (!signal.aborted && !this.shutdownSignal.aborted) {
      const current = await this.fingerprint();
      const now = Date.now();
      if (fingerprintChanged(last, current) || now - lastSentAt >= this.fingerprintPeriodMs) {
        if (last !== undefined && last.health !== current.health) {
          this.logger.info('driver health changed', { from: last.health, to: current.health, description: current.description });
        }
        last = current;
        lastSentAt = now;
        yield current;
      }
      await sleep(Math.min(this.healthCheckPeriodMs, this.fingerprintPeriodMs), [signal, this.shutdownSignal]);
    }
  }

  /** The runtime the plugin config selects. */
  private runtime(): Runtime {
    return this.runtimeNamed(this.currentConfig.runtime, 'start task');
  }

  /**
   * A runtime by name: for starting tasks (`start task`: every binary must be there) or for
   * taking over and sweeping tasks an earlier plugin process launched (only what that needs).
   */
  private runtimeNamed(name: string, purpose: 'start task' | 'recover task'): Runtime {
    if (this.runtimeOverride !== undefined) return this.runtimeOverride;
    const path = findExecutable(name, { pathEnv: process.env.PATH ?? '' });
    if (path === undefined && purpose === 'start task') {
      throw failure('start task', `${name} not found on the agent's PATH`, { code: 'failed_precondition', fix: `install ${name === 'bwrap' ? 'bubblewrap' : name} on the client` });
    }
    if (name === 'bwrap') return new BwrapRuntime(path ?? 'bwrap', findExecutable('nsenter', { pathEnv: process.env.PATH ?? '' }));
    const init = findRuncInit(this.currentConfig.runc_init, process.env.PATH);
    if (!init.found && purpose === 'start task') {
      const [cause, fix] = init.problem.split('; fix: ');
      throw failure('start task', cause ?? init.problem, { code: 'failed_precondition', ...(fix === undefined ? {} : { fix }) });
    }
    return new RuncRuntime({
      runcPath: path ?? 'runc',
      initPath: init.found ? init.path : '/usr/bin/tini-static',
      runcRoot: join(this.currentConfig.state_dir, 'runc'),
      shellPath: findExecutable('sh', { pathEnv: '/bin:/usr/bin' }) ?? '/bin/sh',
    });
  }

  /** state_dir, its views/, tasks/ and etc/: traversable (not readable) by unprivileged task users. */
  private dirsReady: Promise<void> | undefined;
  private dirsFor = '';
  private ensureDirs(): Promise<void> {
    const root = this.currentConfig.state_dir;
    if (this.dirsReady === undefined || this.dirsFor !== root) {
      this.dirsFor = root;
      this.dirsReady = (async () => {
        for (const dir of [root, join(root, 'views'), join(root, 'tasks'), join(root, 'etc')]) await makeDir(dir, 0o711);
      })();
      this.dirsReady.catch(() => (this.dirsReady = undefined));
    }
    return this.dirsReady;
  }

  private freshSearchable(): Set<string> {
    if (Date.now() - this.searchableClearedAt > 60_000) {
      this.searchable.clear();
      this.searchableClearedAt = Date.now();
    }
    return this.searchable;
  }

  private closureCache(): ClosureCache {
    const dir = join(this.currentConfig.state_dir, 'closures');
    if (this.closures === undefined || this.closures.directory !== dir) this.closures = new ClosureCache(dir);
    return this.closures;
  }

  setRuntimeForTests(runtime: Runtime): void {
    this.runtimeOverride = runtime;
  }

  private task(taskId: string): TaskHandle {
    const handle = this.tasks.get(taskId);
    if (handle === undefined) throw new DriverError(TASK_NOT_FOUND_MESSAGE, { code: 'not_found' });
    return handle;
  }

  /**
   * StartTask: realise the closure, build the task's root and launch it. Nomad keeps the
   * returned handle and calls WaitTask next. A second start of a known id fails.
   */
  async startTask(request: StartRequest): Promise<TaskHandle> {
    const key = taskKey(request.id);
    if (this.tasks.has(request.id) || this.starting.has(key)) {
      throw failure('start task', `task with ID ${quote(request.id)} already started`, { code: 'already_exists' });
    }
    this.learnNode(request);
    this.starting.add(key);
    const handle = await startTask(request, {
      config: this.currentConfig,
      runtime: this.runtime(),
      logger: this.logger.child({ task_id: request.id, alloc_id: request.allocId, task_name: request.name }),
      event: (message) =>
        this.events.publish({ taskId: request.id, allocId: request.allocId, taskName: request.name, timestamp: new Date(), message, annotations: {} }),
      acquireShared: (kind, key, create) => this.shared.acquire(kind, key, request.id, create),
      releaseShared: (kind, key) => this.releaseShared(kind, key, request.id),
      searchable: this.freshSearchable(),
      closures: this.closureCache(),
      ensureDirs: () => this.ensureDirs(),
      cgroupVersion: () => this.cgroupVersion(),
    }).finally(() => this.starting.delete(key));
    this.tasks.set(request.id, handle);
    void handle.exited.then((status) =>
      this.logger.info('task exited', { task_id: request.id, exit_code: status.exitCode, signal: status.signal, oom_killed: status.oomKilled }),
    );
    return handle;
  }

  /**
   * RecoverTask: rebuilds a task of an earlier plugin process from its driver_state alone; a
   * no-op for a task this process knows. A task that is gone without an exit record is swept
   * (nothing of it stays) and the call fails, so Nomad starts it again.
   */
  async recoverTask(taskId: string, driverState: Uint8Array, request: () => TaskRequest): Promise<void> {
    if (this.tasks.has(taskId)) return;
    // nothing in driver_state is trusted: paths are derived, keys and the cgroup checked
    const persisted = decodePersistedTask(driverState, { taskId, stateRoot: this.currentConfig.state_dir });
    const taskRequest = request();
    const who = owner(taskRequest.nodeId, taskRequest.nodeName);
    await this.checkRecoveredOwner(persisted, who);
    checkRecoveredUser(persisted);
    this.learnNode(taskRequest);
    const runtime = this.runtimeNamed(persisted.runtime, 'recover task');
    // the task holds its view and /etc dir again before anything can await: a task of the same
    // closure destroyed meanwhile must not remove what this one has bound
    const noop = async () => undefined;
    await this.shared.acquire('views', persisted.viewKey, taskId, noop);
    await this.shared.acquire('etc', persisted.etcKey, taskId, noop);
    let launched;
    try {
      launched = await runtime.recover(recoveryRecord(persisted));
    } catch (error) {
      await sweepTask(persisted, this.sweepContext());
      if (!this.tasks.has(taskId)) {
        for (const [kind, key] of [['views', persisted.viewKey], ['etc', persisted.etcKey]] as const) {
          await this.releaseShared(kind, key, taskId).catch((e: unknown) => this.logger.warn(`failed to release the ${kind} entry of a task that could not be recovered`, { task_id: taskId, err: errorMessage(e) }));
        }
      }
      throw error;
    }
    if (this.tasks.has(taskId)) return; // a concurrent RecoverTask won
    await this.markRecovered(persisted, who);
    const cgroup = openTaskCgroup(persisted.cgroup);
    const handle = adoptTask(taskRequest, launched, persisted, cgroup);
    this.tasks.set(taskId, handle);
    this.logger.info('task recovered', { task_id: taskId, pid: persisted.pid, init_pid: persisted.initPid, runtime: persisted.runtime });
    void handle.exited.then((status) =>
      this.logger.info('task exited', { task_id: taskId, exit_code: status.exitCode, signal: status.signal, oom_killed: status.oomKilled }),
    );
  }

  /**
   * Refuses a record of another node: the one in driver_state (version 3) or the owner mark on
   * the task's state dir (a state_dir shared by two clients). Nothing is swept then.
   */
  private async checkRecoveredOwner(persisted: PersistedTask, who: Owner): Promise<void> {
    const mark = await ownerOf(persisted.stateDir);
    for (const [what, nodeId] of [['driver_state field nodeId', persisted.nodeId], [`the owner mark in ${persisted.stateDir}`, mark?.nodeId ?? '']] as const) {
      if (nodeId !== '' && nodeId !== who.nodeId) {
        throw failure('recover task', `${what} names Nomad node ${quote(nodeId)}, and this task runs on node ${quote(who.nodeId)}`, {
          code: 'invalid_argument',
          fix: 'the task cannot be recovered; Nomad destroys it and starts it again (give every Nomad client on a host its own state_dir)',
        });
      }
    }
  }

  /** Marks what a recovered task uses as this node's (tasks of the previous plugin version carry no marks). */
  private async markRecovered(persisted: PersistedTask, who: Owner): Promise<void> {
    try {
      const { state_dir: stateRoot, gc_roots_dir: gcRoots } = this.currentConfig;
      if ((await ownerOf(persisted.stateDir)) === undefined && (await entryKind(persisted.stateDir)) === 'directory') await markDir(persisted.stateDir, who);
      const gcRoot = join(gcRoots, persisted.gcRootKey);
      if ((await ownerOf(gcRoot)) === undefined && (await entryKind(gcRoot)) === 'directory') await markDir(gcRoot, who);
      await markShared(stateRoot, 'views', persisted.viewKey, who);
      await markShared(stateRoot, 'etc', persisted.etcKey, who);
    } catch (error) {
      this.logger.warn('failed to mark a recovered task as this node\'s', { task_id: persisted.taskId, err: errorMessage(error) });
    }
  }

  /**
   * The Nomad node this instance serves: only StartTask and RecoverTask carry it
   * (TaskConfig.node_id). Until one did, the orphan sweep removes nothing; a sweep that was
   * due meanwhile runs once the node is known.
   */
  private node: Owner | undefined;
  private sweepDue = false;
  private learnNode(request: TaskRequest): void {
    if (request.nodeId === '') return;
    if (!NODE_ID.test(request.nodeId)) {
      this.logger.warn('a task names a node id that is not a Nomad node id; ignored', { node_id: request.nodeId });
      return;
    }
    if (this.node === undefined) {
      this.node = owner(request.nodeId, request.nodeName);
      this.logger.debug('serving Nomad node', { node_id: request.nodeId, node_name: request.nodeName });
      if (this.sweepDue) {
        this.sweepDue = false;
        setTimeout(() => void this.reconcileNow(), 1000).unref();
      }
    } else if (this.node.nodeId !== request.nodeId) {
      this.logger.warn('a task names another Nomad node than earlier tasks; the orphan sweep keeps to the first', { node_id: this.node.nodeId, task_node_id: request.nodeId });
    }
  }

  /** Entries the sweep left because they are not provably this node's, each logged once. */
  private readonly leftAlone = new Set<string>();

  private sweepContext(): SweepContext {
    return {
      stateDir: this.currentConfig.state_dir,
      gcRootsDir: this.currentConfig.gc_roots_dir,
      logger: this.logger,
      runtimeNamed: (name) => this.runtimeNamed(name, 'recover task'),
      liveCgroups: new Set([...this.tasks.values()].flatMap((t) => (t.resources.cgroup === undefined ? [] : [t.resources.cgroup.path]))),
    };
  }

  /** Keys of tasks whose StartTask is running (their state exists before they are registered). */
  private readonly starting = new Set<string>();
  private reconcileTimer: NodeJS.Timeout | undefined;

  /** The orphan sweep (reconcile.ts), once, `graceMs` after the long-lived instance got its config. */
  private scheduleReconcile(graceMs: number): void {
    if (this.reconcileTimer !== undefined) return;
    this.reconcileTimer = setTimeout(() => void this.reconcileNow(), graceMs);
    this.reconcileTimer.unref();
  }

  async reconcileNow(): Promise<void> {
    const node = this.node;
    if (node === undefined) {
      this.sweepDue = true;
      this.logger.info('orphan sweep postponed: no StartTask or RecoverTask has named this client\'s Nomad node yet');
      return;
    }
    try {
      const report = await reconcile({
        ...this.sweepContext(),
        nodeId: node.nodeId,
        leftAlone: (entry, why) => {
          if (this.leftAlone.has(entry)) return;
          this.leftAlone.add(entry);
          this.logger.info('orphan sweep left an entry that is not provably this node\'s', { entry, reason: why });
        },
        isLiveKey: (key) => this.starting.has(key) || [...this.tasks.values()].some((t) => t.resources.key === key),
        shared: this.shared,
      });
      const removed = report.tasks.length + report.gcRoots.length + report.views.length + report.etc.length;
      if (removed > 0) this.logger.info('removed what forgotten tasks left behind', { tasks: report.tasks, gc_roots: report.gcRoots, views: report.views, etc: report.etc });
      else this.logger.debug('orphan sweep found nothing to remove');
    } catch (error) {
      this.logger.error('failed to sweep forgotten tasks', { err: errorMessage(error) });
    }
  }

  /** WaitTask: resolves when the task exits (at once if it has); may be called many times. */
  async waitTask(taskId: string): Promise<ExitStatus> {
    return this.task(taskId).exited;
  }

  /** The host's cgroup version, detected once; no usable cgroups fails the start clearly. */
  private cgroupFacts: Promise<CgroupVersion> | undefined;
  private cgroupVersion(): Promise<CgroupVersion> {
    this.cgroupFacts ??= detectCgroups().then((facts) => {
      if (facts.version === undefined || facts.problem !== undefined) {
        this.cgroupFacts = undefined;
        throw failure('start task', `no usable cgroups: ${facts.problem ?? 'unknown cgroup layout'}`, { code: 'failed_precondition' });
      }
      return facts.version;
    });
    return this.cgroupFacts;
  }

  /**
   * TaskStats: one sample of the task's cgroup every `intervalMs` until the task exits or the
   * stream ends. CPU percentages need two samples: the first reports 0 for them, as Nomad's
   * own executor does.
   */
  async *taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskUsage> {
    const handle = this.task(taskId);
    const cgroup = handle.cgroup;
    if (cgroup === undefined) throw failure('collect task stats', 'the task has no cgroup', { code: 'failed_precondition' });
    const compute = nodeCompute();
    let previous: { sample: TaskCgroupStats['cpu']; at: bigint } | undefined;
    while (!signal.aborted && !this.shutdownSignal.aborted && handle.state === 'running') {
      const stats = await cgroup.readStats();
      const at = process.hrtime.bigint();
      const cpu = cpuUsage(previous?.sample, stats.cpu, previous === undefined ? 0 : Number(at - previous.at), compute);
      previous = { sample: stats.cpu, at };
      yield { timestamp: new Date(), cpu, stats };
      await sleep(Math.max(intervalMs, 100), [signal, this.shutdownSignal]);
    }
  }

  /**
   * StopTask: `signal` (the task's kill_signal; SIGINT when empty, as Nomad's own drivers do)
   * to the command, SIGKILL of every task process after `timeoutMs`. Stopping a task that has
   * exited already succeeds. Does not release the task's resources: DestroyTask does.
   */
  async stopTask(taskId: string, signal: string, timeoutMs: number): Promise<void> {
    const handle = this.task(taskId);
    if (handle.state === 'exited') return;
    await handle.launched.stop(parseSignal(signal === '' ? 'SIGINT' : signal), timeoutMs);
  }

  /** SignalTask: `nomad alloc signal` (SIGKILL when no -s is given). */
  signalTask(taskId: string, signal: string): void {
    const handle = this.task(taskId);
    if (handle.state === 'exited') {
      throw failure('signal task', 'the task has exited', { code: 'failed_precondition' });
    }
    handle.launched.signal(parseSignal(signal));
  }

  /**
   * DestroyTask: after every exit, and after a failed recovery. Kills the task when `force`
   * (refuses a running one otherwise), then removes its GC root, state and unused store view.
   */
  async destroyTask(taskId: string, force: boolean): Promise<void> {
    const handle = this.tasks.get(taskId);
    if (handle === undefined) return; // already destroyed: nothing of it is left
    if (handle.state === 'running') {
      if (!force) throw failure('destroy task', 'the task is still running', { code: 'failed_precondition', fix: 'stop the task first' });
      await handle.launched.kill();
    }
    await handle.exited;
    this.tasks.delete(taskId);
    const { resources } = handle;
    await handle.launched.dispose();
    if (handle.cgroup !== undefined) await releaseCgroup(handle.cgroup);
    await removeTaskGcRoot(this.currentConfig.gc_roots_dir, resources.gcRootKey);
    await removeTree(resources.stateDir);
    await this.releaseShared('views', resources.viewKey, taskId);
    await this.releaseShared('etc', resources.etcKey, taskId);
    this.logger.debug('task destroyed', { task_id: taskId });
  }

  /** InspectTask: the task's state and, once exited, its result. */
  inspectTask(taskId: string): TaskHandle {
    return this.task(taskId);
  }

  /**
   * Task `holder` lets go of a shared store view or /etc dir; the last holder's release removes
   * it (driver/shared-resources.ts). Holders count from the start of StartTask or RecoverTask,
   * not from the moment a task is registered.
   */
  private async releaseShared(kind: SharedKind, key: string, holder: string): Promise<void> {
    const stateDir = this.currentConfig.state_dir;
    await this.shared.release(kind, key, holder, async () => {
      // other Nomad clients on this host may use it too (a shared state_dir): only the last one removes it
      if (!(await unmarkShared(stateDir, kind, key, this.node?.nodeId ?? ''))) return;
      if (kind === 'views') await removeStoreView(join(stateDir, 'views'), key);
      else await removeTree(join(stateDir, 'etc', key));
    });
  }

  /**
   * ExecTask: script checks and template change scripts. Runs `command` in the task without a
   * terminal and with empty input for at most `timeoutMs` (0: no limit) and returns its output
   * and exit status. A program that cannot be found is exit 127 with the reason on stderr, as
   * in a shell. Past the timeout the command's processes are killed and the call fails with
   * deadline_exceeded, which Nomad shows with the check or the template event.
   */
  async execTask(taskId: string, command: readonly string[], timeoutMs: number): Promise<ExecResult> {
    const handle = this.task(taskId);
    const prepared = await this.prepareExec(handle, command, false);
    if ('failed' in prepared) {
      return { stdout: Buffer.alloc(0), stderr: Buffer.from(prepared.failed.message), exit: { exitCode: prepared.failed.exitCode, signal: 0, oomKilled: false } };
    }
    const result = await runInTask(await handle.launched.execCommand(prepared.spec), { timeoutMs });
    this.logger.debug('exec finished', { task_id: taskId, command: command.join(' '), exit_code: result.exitCode, timed_out: result.timedOut });
    if (result.timedOut) {
      throw failure('exec in task', `${quote(command.join(' '))} ran longer than its timeout of ${timeoutMs} ms; its processes were killed`, {
        code: 'deadline_exceeded',
        fix: "raise the check's or the change script's timeout, or make the command finish sooner",
      });
    }
    return { stdout: result.stdout, stderr: result.stderr, exit: { exitCode: result.exitCode, signal: result.signal, oomKilled: false } };
  }

  /**
   * ExecTaskStreaming: `nomad alloc exec`. Starts `command` in the task, on a terminal opened
   * inside the task when `tty`, with its output going to `output`; the caller feeds input,
   * window sizes and EOF to the session and waits for its exit. A program that cannot be found
   * is a session that printed the reason and exited 127.
   */
  async startExec(taskId: string, command: readonly string[], tty: boolean, output: ExecOutput): Promise<ExecSession> {
    const handle = this.task(taskId);
    const prepared = await this.prepareExec(handle, command, tty);
    if ('failed' in prepared) {
      // a terminal in raw mode needs carriage returns
      output.stderr(Buffer.from(tty ? prepared.failed.message.replace(/\n/g, '\r\n') : prepared.failed.message));
      const exit = { exitCode: prepared.failed.exitCode, signal: 0 };
      const none = () => undefined;
      return { pid: -1, write: none, closeStdin: none, resize: none, kill: none, pause: none, resume: none, exited: Promise.resolve(exit) };
    }
    const session = await startInTask(await handle.launched.execCommand(prepared.spec), { tty, onStdout: output.stdout, onStderr: output.stderr });
    this.logger.debug('exec started', { task_id: taskId, command: command.join(' '), tty, pid: session.pid });
    void session.exited.then((exit) => this.logger.debug('exec finished', { task_id: taskId, command: command.join(' '), exit_code: exit.exitCode }));
    return session;
  }

  /** The ExecSpec for `command` in a running task (driver/exec-task.ts), from what the host says about it now. */
  private async prepareExec(handle: TaskHandle, command: readonly string[], tty: boolean): Promise<ReturnType<typeof planExec>> {
    if (handle.state === 'exited') throw failure('exec in task', 'the task has exited', { code: 'failed_precondition' });
    const persisted = handle.persisted;
    const launched =
      handle.process ??
      (persisted === undefined
        ? undefined
        : { argv: persisted.argv, env: handle.request.env, cwd: persisted.cwd, uid: persisted.user.uid, gid: persisted.user.gid, capabilities: persisted.capabilities });
    if (launched === undefined) throw failure('exec in task', 'the task has no recorded process', { code: 'internal' });
    const initPid = handle.launched.initPid;
    const commandPid = firstChild(initPid);
    return planExec(
      {
        command,
        tty,
        launched,
        environ: commandPid === undefined ? undefined : readEnviron(commandPid),
        cgroupProcsFiles: handle.cgroup === undefined ? [] : await handle.cgroup.procsFiles(),
      },
      (taskPath) => executableKind(pathInRootOf(initPid, taskPath)),
    );
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
    fix: 'the task cannot be recovered; Nomad destroys it and starts it again',
  });
}

function sleep(ms: number, signals: readonly AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener('abort', done, { once: true });
  });
}

const SIGNALS = new Set<string>(['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS']);

/** `SIGUSR1`, `sigusr1` or `USR1` → `SIGUSR1`; anything else is an invalid argument. */
export function parseSignal(name: string): NodeJS.Signals {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!SIGNALS.has(full)) {
    throw failure('parse signal', `${quote(name)} is not a signal name`, { code: 'invalid_argument', fix: 'use a name such as SIGTERM, SIGHUP or SIGUSR1' });
  }
  return full as NodeJS.Signals;
}

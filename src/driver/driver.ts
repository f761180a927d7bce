/**
 * NixDriver: the plugin's behaviour behind Nomad's BasePlugin and Driver RPCs, one short method
 * per call, each delegating to the module named in its docstring. It knows nothing of gRPC or
 * protobuf (rpc/ translates) nor which runtimes exist (main.ts passes them in); it owns the
 * plugin config, the task store, the shared-resource holds and the task-event hub.
 */
import { asFailure } from '../errors.js';
import { defaultPluginConfig, parseDurationMs, type PluginConfig } from '../config/plugin-config.js';
import { isLevel, type Level } from '../log/hclog-format.js';
import type { Logger } from '../log/logger.js';
import type { RuntimeFactory } from '../runtime/select.js';
import type { ExitStatus } from '../runtime/runtime.js';
import { PLUGIN_VERSION } from '../version.js';
import { CAPABILITIES, type DriverCapabilities } from './capabilities.js';
import { TaskEventHub } from './events.js';
import { execTask, startExec, type ExecOutput, type ExecResult, type ExecSession } from './exec.js';
import type { Fingerprint } from './fingerprint.js';
import { fingerprintStream, probeFingerprint } from './fingerprint-stream.js';
import { HostCaches } from './host-caches.js';
import type { HostProbe } from './probe-host.js';
import { OrphanSweep, recoverTask, type RecoveryContext } from './recovery.js';
import { releaseShared } from './shared-release.js';
import { SharedResources, type SharedKind } from './shared-resources.js';
import { startTask, type StartContext } from './start-task.js';
import { destroyTask, signalTask, stopTask } from './stop-task.js';
import type { StartRequest, TaskHandle, TaskRequest } from './task.js';
import { taskStats, type TaskUsage } from './task-stats.js';
import { TaskStore } from './task-store.js';

export type { ExecOutput, ExecResult, ExecSession } from './exec.js';
export type { TaskUsage } from './task-stats.js';

export interface NixDriverOptions {
  readonly logger: Logger;
  readonly probe: HostProbe;
  /** The runtimes by name (runtime/select.ts hostRuntimes; a fake in tests). */
  readonly runtimes: RuntimeFactory;
  /** Applies the plugin config's log_level (empty: keep the level from the environment). */
  readonly setLogLevel?: (level: Level) => void;
  /** Nomad's builtin drivers re-send their fingerprint every 30 s. */
  readonly fingerprintPeriodMs?: number;
  /** How often health is re-checked, so a change is reported without waiting a full period. */
  readonly healthCheckPeriodMs?: number;
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
  private readonly runtimes: RuntimeFactory;
  private readonly setLogLevel: ((level: Level) => void) | undefined;
  private readonly fingerprintPeriodMs: number;
  private readonly healthCheckPeriodMs: number;
  /** Replaced wholesale by setConfig; read by every call. */
  private currentConfig: PluginConfig = defaultPluginConfig();
  private agent: AgentConfig | undefined;
  private readonly shutdownController = new AbortController();
  /** Tasks this plugin process knows, by Nomad task id, and those starting. */
  private readonly tasks = new TaskStore();
  /** Who holds which store view and /etc dir: starting, running and recovering tasks. */
  private readonly shared = new SharedResources();
  /** What StartTask learns about the host once (dirs made, searchable dirs, closures, cgroups). */
  private readonly host = new HostCaches();
  /** The Nomad node served and the orphan sweep of its forgotten tasks. */
  private readonly sweep: OrphanSweep;

  constructor(options: NixDriverOptions) {
    this.logger = options.logger;
    this.probe = options.probe;
    this.runtimes = options.runtimes;
    this.setLogLevel = options.setLogLevel;
    this.fingerprintPeriodMs = options.fingerprintPeriodMs ?? 30_000;
    this.healthCheckPeriodMs = options.healthCheckPeriodMs ?? 5_000;
    this.sweep = new OrphanSweep(this.recoveryContext());
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
   * twice on the agent's validation launch (without agent config). Must be idempotent. The
   * first agent config schedules the orphan sweep (driver/recovery.ts) orphan_grace later.
   */
  setConfig(config: PluginConfig, agent: AgentConfig | undefined): void {
    this.currentConfig = config;
    if (agent !== undefined && this.agent === undefined) this.sweep.schedule(parseDurationMs(config.orphan_grace) ?? 300_000);
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

  /** The fingerprint as of now (driver/fingerprint-stream.ts); never fails. */
  fingerprint(): Promise<Fingerprint> {
    return probeFingerprint(this.probe, this.currentConfig, this.logger);
  }

  /** The Fingerprint stream (driver/fingerprint-stream.ts), until `signal` aborts or the driver shuts down. */
  fingerprints(signal: AbortSignal): AsyncGenerator<Fingerprint> {
    const schedule = { periodMs: this.fingerprintPeriodMs, checkPeriodMs: this.healthCheckPeriodMs };
    return fingerprintStream(() => this.fingerprint(), schedule, [signal, this.shutdownSignal], this.logger);
  }

  /**
   * StartTask (driver/start-task.ts): realise the closure, build the task's root and launch it
   * with the runtime the plugin config selects. Nomad keeps the returned handle and calls
   * WaitTask next. A second start of a known id fails.
   */
  async startTask(request: StartRequest): Promise<TaskHandle> {
    const handle = await this.tasks.starts(request.id, async () => {
      this.sweep.learnNode(request);
      return startTask(request, this.startContext(request));
    });
    void handle.exited.then((status) =>
      this.logger.info('task exited', { task_id: request.id, exit_code: status.exitCode, signal: status.signal, oom_killed: status.oomKilled }),
    );
    return handle;
  }

  /** RecoverTask (driver/recovery.ts): a task of an earlier plugin process, from its driver_state alone. */
  recoverTask(taskId: string, driverState: Uint8Array, request: () => TaskRequest): Promise<void> {
    const context = {
      ...this.recoveryContext(),
      sweep: this.sweep,
      releaseShared: (kind: SharedKind, key: string, holder: string) => this.releaseShared(kind, key, holder),
    };
    return failingAs('recover task', recoverTask(taskId, driverState, request, context));
  }

  /** The orphan sweep (driver/recovery.ts), now. */
  reconcileNow(): Promise<void> {
    return this.sweep.sweepNow();
  }

  /** WaitTask: resolves when the task exits (at once if it has); may be called many times. */
  async waitTask(taskId: string): Promise<ExitStatus> {
    return this.tasks.get(taskId).exited;
  }

  /** TaskStats (driver/task-stats.ts): a sample every `intervalMs` until the task exits or the stream ends. */
  async *taskStats(taskId: string, intervalMs: number, signal: AbortSignal): AsyncGenerator<TaskUsage> {
    yield* taskStats(this.tasks.get(taskId), intervalMs, [signal, this.shutdownSignal]);
  }

  /** StopTask (driver/stop-task.ts): kill_signal, then SIGKILL after `timeoutMs`; releases nothing. */
  async stopTask(taskId: string, signal: string, timeoutMs: number): Promise<void> {
    await failingAs('stop task', stopTask(this.tasks.get(taskId), signal, timeoutMs));
  }

  /** SignalTask (driver/stop-task.ts): `nomad alloc signal` (SIGKILL when no -s is given). */
  signalTask(taskId: string, signal: string): void {
    signalTask(this.tasks.get(taskId), signal);
  }

  /** DestroyTask (driver/stop-task.ts): after every exit and failed recovery; releases everything of the task. */
  destroyTask(taskId: string, force: boolean): Promise<void> {
    const releaseShared = (kind: SharedKind, key: string, holder: string) => this.releaseShared(kind, key, holder);
    return failingAs(
      'destroy task',
      destroyTask(this.tasks, taskId, force, { gcRootsDir: this.currentConfig.gc_roots_dir, logger: this.logger, releaseShared }),
    );
  }

  /** InspectTask: the task's state and, once exited, its result. */
  inspectTask(taskId: string): TaskHandle {
    return this.tasks.get(taskId);
  }

  /** ExecTask (driver/exec.ts): script checks and template change scripts. */
  async execTask(taskId: string, command: readonly string[], timeoutMs: number): Promise<ExecResult> {
    return failingAs('exec in task', execTask(this.tasks.get(taskId), command, timeoutMs, this.logger));
  }

  /** ExecTaskStreaming (driver/exec.ts): `nomad alloc exec`. */
  async startExec(taskId: string, command: readonly string[], tty: boolean, output: ExecOutput): Promise<ExecSession> {
    return failingAs('exec in task', startExec(this.tasks.get(taskId), command, tty, output, this.logger));
  }

  /** Task `holder` lets go of a shared store view or /etc dir (driver/shared-release.ts). */
  private releaseShared(kind: SharedKind, key: string, holder: string): Promise<void> {
    return releaseShared(this.shared, this.currentConfig.state_dir, () => this.sweep.nodeId, kind, key, holder);
  }

  /** What StartTask of `request` uses of the driver: the config, the runtime, holds, caches, events. */
  private startContext(request: StartRequest): StartContext {
    const config = this.currentConfig;
    return {
      config,
      runtime: this.runtimes(config.runtime, 'start task', config),
      logger: this.logger.child({ task_id: request.id, alloc_id: request.allocId, task_name: request.name }),
      event: (message) =>
        this.events.publish({ taskId: request.id, allocId: request.allocId, taskName: request.name, timestamp: new Date(), message, annotations: {} }),
      acquireShared: (kind, key, create) => this.shared.acquire(kind, key, request.id, create),
      releaseShared: (kind, key) => this.releaseShared(kind, key, request.id),
      searchable: this.host.searchable(),
      closures: this.host.closureCache(config.state_dir),
      ensureDirs: () => this.host.ensureDirs(this.currentConfig.state_dir),
      cgroupVersion: () => this.host.cgroupVersion(),
    };
  }

  private recoveryContext(): RecoveryContext {
    return {
      logger: this.logger,
      config: () => this.currentConfig,
      tasks: this.tasks,
      shared: this.shared,
      runtimeNamed: (name) => this.runtimes(name, 'recover task', this.currentConfig),
      event: (task, message) =>
        this.events.publish({ taskId: task.id, allocId: task.allocId, taskName: task.name, timestamp: new Date(), message, annotations: {} }),
    };
  }
}

/** `call`, its rejection a DriverError of `what` (errors.ts asFailure): no bare Error reaches Nomad. */
async function failingAs<T>(what: string, call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (error) {
    throw asFailure(what, error);
  }
}

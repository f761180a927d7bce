/**
 * What the two runtime adapters share: the detached spawn of their monitor (bwrap itself, or
 * the sh that runs `runc run`), the exit records they read, the take-over of a task of an
 * earlier plugin process, and the task class (signal, stop, kill, wait). An adapter adds only
 * what differs: how its monitor is started and reports the sandbox's pid, which process gets
 * a signal, and how a command is run inside the task.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { failure } from '../errors.js';
import { processStartTime, signalProcess } from '../host/proc.js';
import { readFile } from '../host/task-files.js';
import { initIsOurs, monitorIsOurs, watchDetachedExit, watchSpawned, type TaskProcesses } from './detached-exit.js';
import type { ExecSpec, ExitStatus, HostCommand, LaunchedTask } from './runtime.js';

/** How the monitor exited: its code, or the signal that killed it. */
export interface MonitorExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A runtime's monitor, started detached. */
export interface MonitorCommand {
  readonly program: string;
  readonly args: readonly string[];
  /** fds 0.. of the monitor: the plugin's log sinks and status files, pipes. */
  readonly stdio: StdioOptions;
  /** Its complete environment: nothing of the plugin's own is passed on. */
  readonly env: Readonly<Record<string, string>>;
  /** The user it runs as; the plugin's (root) when absent. */
  readonly uid?: number;
  readonly gid?: number;
  /** The fix of the error when `program` cannot be started at all. */
  readonly missingFix: string;
  /**
   * Descriptors (`'pipe'` in `stdio`) whose whole output the launch reads: collected from the
   * spawn on, because Node discards what a child's pipes still hold once it has exited, and
   * the launch may await other work first.
   */
  readonly collect?: readonly number[];
}

/** A monitor that was started: its pid and exit; the caller owns the child's pipes. */
export interface StartedMonitor {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Settles when the monitor has exited. */
  readonly exited: Promise<MonitorExit>;
  /** Per descriptor of `collect`: all it wrote, once the pipe ended (closed by every process holding it, or failed). */
  readonly collected: ReadonlyMap<number, Promise<Buffer>>;
}

/**
 * Starts `command` detached: its own session and process group, so it survives the plugin and
 * gets no terminal signal, and unreferenced, so the plugin does not wait for it. `handles`
 * (what the plugin opened for the monitor's fds) are closed once it was spawned, in every
 * case. Rejects with a `failed_precondition` DriverError "failed to launch task: cannot run
 * <program>: <cause>" when it could not be started, its pipes closed.
 */
export async function spawnMonitor(command: MonitorCommand, handles: readonly FileHandle[]): Promise<StartedMonitor> {
  let child: ChildProcess;
  let monitor: ReturnType<typeof watchSpawned>;
  const collected = new Map<number, Promise<Buffer>>();
  try {
    child = spawn(command.program, [...command.args], {
      detached: true,
      stdio: command.stdio,
      env: { ...command.env },
      ...(command.uid === undefined ? {} : { uid: command.uid }),
      ...(command.gid === undefined ? {} : { gid: command.gid }),
    });
    // before any await: a monitor that fails at once must not exit unheard
    monitor = watchSpawned(child);
    for (const fd of command.collect ?? []) {
      const pipe = child.stdio[fd];
      if (pipe instanceof Readable) collected.set(fd, readAll(pipe));
    }
  } finally {
    await Promise.all(handles.map((handle) => handle.close()));
  }
  const pid = child.pid;
  if (pid === undefined) {
    const error = await monitor.spawnError;
    for (const stream of child.stdio) stream?.destroy();
    throw failure('launch task', `cannot run ${command.program}: ${error.message}`, { code: 'failed_precondition', fix: command.missingFix });
  }
  child.unref();
  return { child, pid, exited: monitor.exited, collected };
}

/** All `pipe` yields until it ends, closes or fails (what it had by then). */
function readAll(pipe: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    const done = () => resolve(Buffer.concat(chunks));
    pipe.on('data', (chunk: Buffer) => chunks.push(chunk));
    pipe.once('end', done);
    pipe.once('close', done);
    pipe.once('error', done);
  });
}

/** The pids of a freshly launched task with their start times (0 when a process is gone already). */
export function launchedPids(pid: number, initPid: number): Pick<TaskProcesses, 'pid' | 'pidStartTime' | 'initPid' | 'initStartTime'> {
  return { pid, pidStartTime: processStartTime(pid) ?? 0, initPid, initStartTime: processStartTime(initPid) ?? 0 };
}

/** `parse` of the file at `path`, or undefined when it is missing, unreadable or not parsed. */
export async function readRecord<T>(path: string, parse: (text: string) => T | undefined): Promise<T | undefined> {
  try {
    return parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * An exit code as both runtimes report it: the init (bwrap's, tini) exits with the command's
 * status, 128+N when the command died of signal N.
 */
export function exitStatusFromCode(exitCode: number): ExitStatus {
  return { exitCode, signal: exitCode > 128 && exitCode < 128 + 65 ? exitCode - 128 : 0, oomKilled: false };
}

/**
 * The exit of a task launched by an earlier plugin process: once its monitor (counted as
 * running only when it is provably the task's, TaskProcesses) is gone, the code `recorded`
 * reads (137 when none was written), as `exited`. Throws a `not_found` DriverError "failed to recover task:
 * <gone>" when the monitor is not running and recorded nothing: nothing is signalled then.
 */
export async function recoveredExit(
  processes: TaskProcesses,
  recorded: () => Promise<number | undefined>,
  gone: string,
): Promise<{ readonly exited: Promise<ExitStatus> }> {
  if (!monitorIsOurs(processes) && (await recorded()) === undefined) {
    throw failure('recover task', gone, {
      code: 'not_found',
      fix: "check the task's logs (nomad alloc logs -stderr) for why it ended while the plugin was down; Nomad starts it again",
    });
  }
  return { exited: watchDetachedExit(() => monitorIsOurs(processes), recorded).then((code) => exitStatusFromCode(code ?? 137)) };
}

/** SIGKILL to the sandbox's init (its pid namespace dies with it) and the monitor, each only when provably the task's. */
export function killOwned(processes: TaskProcesses): void {
  if (initIsOurs(processes)) signalProcess(processes.initPid, 'SIGKILL');
  if (monitorIsOurs(processes)) signalProcess(processes.pid, 'SIGKILL');
}

/**
 * A launched or recovered task of either runtime. Every signal goes only to a process proven
 * to be the task's (TaskProcesses). An adapter says how a signal reaches the command and how
 * a command runs inside the task; `dispose` removes what the runtime keeps of the task.
 */
export abstract class DetachedTask implements LaunchedTask {
  readonly pid: number;
  readonly pidStartTime: number;
  readonly initPid: number;
  readonly initStartTime: number;

  constructor(
    protected readonly processes: TaskProcesses,
    readonly startedAt: Date,
    readonly exited: Promise<ExitStatus>,
  ) {
    this.pid = processes.pid;
    this.pidStartTime = processes.pidStartTime;
    this.initPid = processes.initPid;
    this.initStartTime = processes.initStartTime;
  }

  /** Sends `signal` to the task's command; false when none of its processes is left. */
  abstract signal(signal: NodeJS.Signals): boolean;

  abstract execCommand(spec: ExecSpec): Promise<HostCommand>;

  /** `signal` to the command, then SIGKILL of the whole task if it has not exited within `timeoutMs`; resolves on exit. */
  async stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus> {
    this.signal(signal);
    const timer = setTimeout(() => this.killAll(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL of every process of the task; resolves on exit, once the runtime's state of it is disposed of. */
  async kill(): Promise<ExitStatus> {
    this.killAll();
    const status = await this.exited;
    await this.dispose();
    return status;
  }

  /** Nothing is kept outside the task's state dir unless an adapter says otherwise. */
  async dispose(): Promise<void> {}

  /** SIGKILL to the sandbox's init, when it is the task's: its pid namespace dies with it, so every task process does. */
  protected killAll(): void {
    if (initIsOurs(this.processes)) signalProcess(this.initPid, 'SIGKILL');
  }
}

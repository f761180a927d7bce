/**
 * What the driver needs from a task runtime (bubblewrap now, runc later). The driver does not
 * know which one it holds. Types only.
 */
import type { RootPlan } from '../rootfs/plan.js';
import type { ProcessSpec } from './bwrap/argv.js';

export interface ExitStatus {
  readonly exitCode: number;
  /** Signal number when the command died of one (0 otherwise). */
  readonly signal: number;
  readonly oomKilled: boolean;
}

export interface LaunchRequest {
  readonly plan: RootPlan;
  readonly process: ProcessSpec;
  /** Host directory for this task's runtime state (status files). */
  readonly stateDir: string;
  /** Nomad's log sinks (logmon FIFOs or /dev/null); the task writes to them directly. */
  readonly stdoutPath: string;
  readonly stderrPath: string;
}

/** A launched task. Exactly one LaunchedTask exists per task while the plugin runs. */
export interface LaunchedTask {
  /** The runtime's process on the host (bwrap's monitor), a child of the plugin until it restarts. */
  readonly pid: number;
  /** The sandbox's init process (PID 1 inside); killing it ends every process of the task. */
  readonly initPid: number;
  readonly startedAt: Date;
  /** Resolves once, when the task has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` to the task's command (the processes init started). False when none is left. */
  signal(signal: NodeJS.Signals): boolean;
  /** `signal` to the command, then SIGKILL of the whole task after `timeoutMs`; resolves on exit. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus>;
  /** SIGKILL of every process of the task; resolves on exit. */
  kill(): Promise<ExitStatus>;
}

export interface Runtime {
  readonly name: string;
  launch(request: LaunchRequest): Promise<LaunchedTask>;
}

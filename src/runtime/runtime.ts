/**
 * What the driver needs from a task runtime (bubblewrap or runc). The driver does not know
 * which one it holds. Types only.
 */
import type { RootPlan } from '../rootfs/plan.js';
import type { ProcessSpec } from './process-spec.js';

export type { ProcessSpec } from './process-spec.js';

/** Resource limits of one task, in the units the kernel's cgroup files use. */
export interface TaskLimits {
  /** Relative CPU weight (cgroups v1 cpu.shares; Nomad's `cpu` in MHz). */
  readonly cpuShares?: number;
  /** CPUs the task may run on (cpuset list syntax, e.g. "0-1,3"). */
  readonly cpusetCpus?: string;
  /** Hard memory limit. */
  readonly memoryLimitBytes?: number;
  /** Soft limit (reclaimed first under pressure), when the hard limit is higher. */
  readonly memorySoftLimitBytes?: number;
  /** Maximum number of processes and threads. */
  readonly pidsLimit?: number;
}

export interface ExitStatus {
  readonly exitCode: number;
  /** Signal number when the command died of one (0 otherwise). */
  readonly signal: number;
  readonly oomKilled: boolean;
}

export interface LaunchRequest {
  /** Unique, file-name-safe name of the task (its state key); runc's container id. */
  readonly key: string;
  readonly plan: RootPlan;
  readonly process: ProcessSpec;
  /** Host directory for this task's runtime state (status files). */
  readonly stateDir: string;
  /** Nomad's log sinks (logmon FIFOs or /dev/null); the task writes to them directly. */
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** Nomad's network namespace for the group (`/var/run/netns/<alloc>`); host network when absent. */
  readonly networkNamespace?: string;
  readonly limits?: TaskLimits;
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
  /**
   * True when the runtime sets up the task's mounts as the task user (bwrap in a user
   * namespace), so that user must be able to reach every bound host directory; false when a
   * privileged runtime mounts them (runc).
   */
  readonly mountsAsTaskUser: boolean;
  /**
   * True when the runtime can give an unprivileged task capabilities (as ambient capabilities:
   * runc); bubblewrap started as the task user can only grant them inside its user namespace.
   */
  readonly ambientCapabilities: boolean;
  launch(request: LaunchRequest): Promise<LaunchedTask>;
}

/**
 * What the driver needs from a task runtime (bubblewrap or runc). The driver does not know
 * which one it holds. Types only.
 */
import type { RootPlan } from '../rootfs/plan.js';
import type { ProcessSpec } from './process-spec.js';

export type { ProcessSpec } from './process-spec.js';

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
  /** The task's cgroup, which the task must be in before its command starts. */
  readonly cgroup: CgroupPlacement;
  /**
   * Records that the launch reached sub-step `step` (a snake_case name, `launch_` first), for
   * the per-step timings of the driver's "task started" log line; absent in tests that do not
   * look.
   */
  readonly mark?: (step: string) => void;
}

/**
 * Where the task's processes go. The driver owns the cgroup (driver/task-cgroup.ts): it made
 * it and wrote every limit, and it reads, kills and removes it; the runtime only puts the task
 * in it before the command starts, and writes no limit (but `cpusetCpusAtPath`).
 */
export interface CgroupPlacement {
  /** The cgroup path as runc's `cgroupsPath` takes it: absolute from each hierarchy's root. */
  readonly path: string;
  /** Moves a process into the cgroup (runtimes that start the sandbox outside it, then join). */
  readonly join: (pid: number) => Promise<void>;
  /**
   * Readies the kernel for a `join` in the next milliseconds: `pid` is a process outside the
   * task that nobody else moves (the runtime's just-started monitor), moved into the cgroup it
   * is already in, which leaves it where it is. Resolves once done, never rejects. Absent:
   * nothing to ready. See TaskCgroup.readyJoin.
   */
  readonly readyJoin?: (pid: number) => Promise<void>;
  /** True when a process is in this cgroup: checked before the sandbox's init is signalled. */
  readonly contains: (pid: number) => boolean;
  /**
   * cgroups v1, a task with reserved cores whose cpuset cgroup is not at `path` (Nomad's
   * `reserve` partition): its CPU list, for a runtime that joins `cpuset/<path>` instead and
   * makes that directory itself (runc), so it writes the list there. Absent otherwise.
   */
  readonly cpusetCpusAtPath?: string;
}

/**
 * A command to run inside a running task (`nomad alloc exec`, script checks, template change
 * scripts): the task's namespaces, root, user, cwd and cgroup, with the environment the driver
 * chose. Validated like a ProcessSpec (process-spec.ts).
 */
export interface ExecSpec extends Omit<ProcessSpec, 'hostname'> {
  /** Run it on a terminal allocated inside the task (a /dev/pts entry of the task's own /dev). */
  readonly tty: boolean;
  /** The task cgroup's cgroup.procs files, for runtimes whose exec does not join it itself. */
  readonly cgroupProcsFiles: readonly string[];
}

/**
 * The host command that runs an ExecSpec inside the task; host/exec-in-task.ts starts it
 * (on a terminal when the spec asks for one) and relays its I/O.
 */
export interface HostCommand {
  readonly file: string;
  readonly args: readonly string[];
  /** Its complete environment: nothing of the plugin's own is passed on. */
  readonly env: Readonly<Record<string, string>>;
  /** Removes what preparing it wrote (runc's process file); called once it has exited. */
  readonly cleanup?: () => Promise<void>;
}

/**
 * The host processes of a launched task, as the runtime reports them at launch and the driver
 * records them for a later plugin process (driver/persisted-task.ts).
 */
export interface TaskPids {
  /** The runtime's process on the host (bwrap's monitor), a child of the plugin until it restarts. */
  readonly pid: number;
  /** The sandbox's init process (PID 1 inside); killing it ends every process of the task. */
  readonly initPid: number;
  /** Start times (clock ticks since boot) of pid and initPid: they tell a reused pid apart. */
  readonly pidStartTime: number;
  readonly initStartTime: number;
  readonly startedAt: Date;
}

/** A launched task. Exactly one LaunchedTask exists per task while the plugin runs. */
export interface LaunchedTask extends TaskPids {
  /** Resolves once, when the task has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Sends `signal` to the task's command (the processes init started). False when none is left. */
  signal(signal: NodeJS.Signals): boolean;
  /** `signal` to the command, then SIGKILL of the whole task after `timeoutMs`; resolves on exit. */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus>;
  /** SIGKILL of every process of the task; resolves on exit. */
  kill(): Promise<ExitStatus>;
  /** Removes the runtime's own state of the exited task (runc's container record); idempotent. */
  dispose(): Promise<void>;
  /**
   * The host command that runs `spec` inside this running task, or a DriverError when this
   * runtime cannot run it there (a missing host tool, a user it cannot confine).
   */
  execCommand(spec: ExecSpec): Promise<HostCommand>;
}

/**
 * What a runtime needs to take over a task it launched in an earlier plugin process. The
 * driver validated it (driver/persisted-task.ts): `key` has the state-key grammar, `stateDir`
 * is derived from the configured state_dir, and the cgroup is the task's own; the pids are
 * re-verified by the runtime before anything is signalled (detached-exit.ts TaskProcesses).
 */
export interface RecoveryRecord extends TaskPids {
  readonly key: string;
  readonly stateDir: string;
  /** True when a process is in the task's cgroup. */
  readonly inTaskCgroup: (pid: number) => boolean;
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
  /**
   * Takes over a task launched by an earlier plugin process, running or already exited (its
   * exit code read from the runtime's record). Throws a `not_found` DriverError when the task
   * is gone and left no exit record.
   */
  recover(record: RecoveryRecord): Promise<LaunchedTask>;
  /**
   * SIGKILLs the init and monitor of a task nobody will recover, each only when it is provably
   * that task's (its start time, the runtime's executable and a mark of the task, the task's
   * cgroup): a pid in `record` that is anything else is left alone.
   */
  killOrphan(record: RecoveryRecord): void;
  /** Removes what the runtime itself keeps of a task that is gone (runc's container record); idempotent. */
  forget(key: string): Promise<void>;
}

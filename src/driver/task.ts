/**
 * A task as the driver sees it: what Nomad asked for (TaskRequest, converted by rpc/ from
 * TaskConfig) and the live handle of one started task. Pure types and small helpers.
 */
import type { TaskCgroup } from '../cgroup/task-cgroup.js';
import type { ExitStatus, LaunchedTask, ProcessSpec } from '../runtime/runtime.js';
import { encodePersistedTask, type PersistedTask } from './persisted-task.js';
import type { TaskConfig } from '../config/task-config.js';
import type { ClosureRequest } from './task-request.js';

/** How a task ended (the runtime's record, re-exported for rpc/, which talks to driver/ only). */
export type { ExitStatus } from '../runtime/runtime.js';

export interface DnsSettings {
  readonly servers: readonly string[];
  readonly searches: readonly string[];
  readonly options: readonly string[];
}

/** What the scheduler allocated to the task (TaskConfig.Resources). */
export interface ResourceRequest {
  /** `cpu` in MHz, as Nomad's LinuxResources.CPUShares. */
  readonly cpuShares: number;
  /** `memory` in MiB. */
  readonly memoryMb: number;
  /** `memory_max` in MiB: 0 unset, -1 no hard limit (oversubscription). */
  readonly memoryMaxMb: number;
  /** Reserved cores (`cores = N`), cpuset list syntax; empty when the task shares cores. */
  readonly cpusetCpus: string;
  /** The cgroup Nomad made for the task (its cpuset cgroup on v1); empty when none. */
  readonly cpusetCgroupPath: string;
}

/**
 * A volume Nomad mounts into the task: a group `volume` (host or CSI) named by the task's
 * `volume_mount`, or a mount a device plugin reserved (TaskConfig.mounts).
 */
export interface VolumeMount {
  readonly taskPath: string;
  readonly hostPath: string;
  readonly readOnly: boolean;
  /** `private` (Nomad's default), `host-to-task`, `bidirectional`, or empty. */
  readonly propagationMode: string;
}

/** A device node a device plugin reserved for the task (TaskConfig.devices). */
export interface DeviceRequest {
  readonly taskPath: string;
  readonly hostPath: string;
  /** Letters of "rwm"; empty means all of them (as Docker reads it). */
  readonly permissions: string;
}

/** Nomad's TaskConfig, minus what the driver never reads and the task's config block (StartRequest). */
export interface TaskRequest {
  /** `<alloc_id>/<task_name>/<random>`, new on every (re)start. */
  readonly id: string;
  readonly name: string;
  readonly allocId: string;
  readonly jobName: string;
  readonly taskGroupName: string;
  readonly namespace: string;
  /** The Nomad node whose client runs the task (TaskConfig.node_id, a UUID); '' when Nomad sent none. */
  readonly nodeId: string;
  /** That node's name (TaskConfig.node_name); '' when Nomad sent none. */
  readonly nodeName: string;
  /** The full task environment Nomad computed (NOMAD_* variables, env block, templates). */
  readonly env: Readonly<Record<string, string>>;
  /** The task's `user`, empty when unset. */
  readonly user: string;
  /** `<client alloc_dir>/<alloc_id>` on the host. */
  readonly allocDir: string;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** Nomad's DNS settings for the task (group network `dns` block or CNI result), if any. */
  readonly dns: DnsSettings | undefined;
  /** The network namespace Nomad made for the group (`bridge`, `cni/*`), if any. */
  readonly networkNamespace: string | undefined;
  readonly resources: ResourceRequest | undefined;
  readonly mounts: readonly VolumeMount[];
  readonly devices: readonly DeviceRequest[];
}

/**
 * StartTask's request: the task and its `config {}` block, decoded and validated once at the
 * RPC edge (rpc/codec.ts fromProtoStartTask). RecoverTask's request has no block: recovery
 * reads driver_state only.
 */
export interface StartRequest extends TaskRequest {
  /** The block, typed by its schema (config/task-config.ts), defaults applied. */
  readonly config: TaskConfig;
  /** What to realise, by the block's cross-field rules (task-request.ts validateTaskConfig). */
  readonly closure: ClosureRequest;
}

export { taskKey } from './task-key.js';

export type TaskState = 'running' | 'exited';

/** One started task. Only the exit watcher mutates `exit`/`completedAt`. */
export class TaskHandle {
  exit: ExitStatus | undefined;
  completedAt: Date | undefined;
  /** The task's result, with what the runtime cannot know (OOM kills) added. */
  readonly exited: Promise<ExitStatus>;
  readonly cgroup: TaskCgroup | undefined;
  /** The task's command as launched (user, cwd, environment): what exec'd commands get too. */
  readonly process: ProcessSpec | undefined;

  constructor(
    readonly request: TaskRequest,
    readonly launched: LaunchedTask,
    /**
     * The task's record (what Nomad keeps as driver_state): also what it holds on the host and
     * destroy releases (state dir, GC root = key, store view, /etc dir, cgroup).
     */
    readonly persisted: PersistedTask,
    extra: { readonly exited?: Promise<ExitStatus>; readonly cgroup?: TaskCgroup; readonly process?: ProcessSpec } = {},
  ) {
    this.exited = extra.exited ?? launched.exited;
    this.cgroup = extra.cgroup;
    this.process = extra.process;
    void this.exited.then((status) => {
      this.exit = status;
      this.completedAt = new Date();
    });
  }

  get state(): TaskState {
    return this.exit === undefined ? 'running' : 'exited';
  }

  /** The opaque driver_state Nomad keeps in the task's handle (the encoded record, persisted-task.ts). */
  driverState(): Buffer {
    return encodePersistedTask(this.persisted);
  }
}

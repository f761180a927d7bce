/** Job files for the e2e tests: one group of `driver = "nix"` tasks, HCL written plainly. */

export interface NixJob {
  readonly id: string;
  readonly type?: 'batch' | 'service';
  /** HCL lines inside the task's `config {}`. */
  readonly config: string;
  readonly task?: string;
  /** Extra HCL inside the task block (env, user, kill_signal, kill_timeout, …). */
  readonly taskExtra?: string;
  /** Extra HCL inside the group block (network, …). */
  readonly groupExtra?: string;
  /** The main task's `resources` (default cpu 100 MHz, memory 64 MiB). */
  readonly resources?: { readonly cpu?: number; readonly memory?: number; readonly memoryMax?: number };
  /** The group's count (default 1). */
  readonly count?: number;
  /** More nix tasks in the same group. */
  readonly extraTasks?: readonly { readonly name: string; readonly config: string; readonly taskExtra?: string }[];
}

function taskHcl(name: string, config: string, extra: string | undefined, resources: NixJob['resources'] = {}): string {
  return `    task "${name}" {
      driver = "nix"
      config {
${config}
      }
${extra ?? ''}
      resources {
        cpu    = ${resources.cpu ?? 100}
        memory = ${resources.memory ?? 64}
${resources.memoryMax === undefined ? '' : `        memory_max = ${resources.memoryMax}\n`}      }
    }
`;
}

/** A job that neither restarts nor reschedules, so each test sees exactly one attempt. */
export function nixJobHcl(job: NixJob): string {
  const task = job.task ?? 'main';
  return `job "${job.id}" {
  datacenters = ["*"]
  type        = "${job.type ?? 'batch'}"

  group "g" {
    count = ${job.count ?? 1}
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
${job.groupExtra ?? ''}
${[taskHcl(task, job.config, job.taskExtra, job.resources), ...(job.extraTasks ?? []).map((t) => taskHcl(t.name, t.config, t.taskExtra))].join('')}  }
}
`;
}

/** HCL string literal. */
export const hcl = (value: string): string => JSON.stringify(value);

/** HCL list of strings. */
export const hclList = (values: readonly string[]): string => `[${values.map(hcl).join(', ')}]`;

/** A task `config {}` body running `command args` from the prebuilt store path `path`. */
export const storeConfig = (path: string, command: string, args: readonly string[]): string =>
  `        store_path = ${hcl(path)}\n        command    = ${hcl(command)}\n        args       = ${hclList(args)}`;

/** A task `config {}` body running `sh -c script` from a busybox store path. */
export const shConfig = (busybox: string, script: string): string => storeConfig(busybox, 'bin/sh', ['-c', script]);

/** Job files for the e2e tests: one group, one `driver = "nix"` task, HCL written plainly. */

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
}

/** A job that neither restarts nor reschedules, so each test sees exactly one attempt. */
export function nixJobHcl(job: NixJob): string {
  const task = job.task ?? 'main';
  return `job "${job.id}" {
  datacenters = ["*"]
  type        = "${job.type ?? 'batch'}"

  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
${job.groupExtra ?? ''}
    task "${task}" {
      driver = "nix"
      config {
${job.config}
      }
${job.taskExtra ?? ''}
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`;
}

/** HCL string literal. */
export const hcl = (value: string): string => JSON.stringify(value);

/** HCL list of strings. */
export const hclList = (values: readonly string[]): string => `[${values.map(hcl).join(', ')}]`;

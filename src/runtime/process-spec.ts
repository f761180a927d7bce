/**
 * The task's command as every runtime runs it, and the checks both renderers (bwrap argv, OCI
 * config) apply before rendering it. Pure: no I/O.
 */
import { failure, quote } from '../errors.js';
import { absolutePathProblem } from '../paths.js';

/** The task's command as it runs inside its root. */
export interface ProcessSpec {
  /** argv[0] is an absolute path inside the task root (e.g. /nix/store/…/bin/web). */
  readonly argv: readonly string[];
  /** The complete environment; nothing of the plugin's own environment reaches the task. */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory inside the task root. */
  readonly cwd: string;
  /** The host uid/gid the task runs as (no uid mapping: uid 1000 inside is uid 1000 outside). */
  readonly uid: number;
  readonly gid: number;
  readonly hostname?: string;
  /**
   * Linux capabilities the command keeps (`CAP_…` names), computed by driver/privileges.ts:
   * for root tasks the default set adjusted by cap_drop/cap_add, for unprivileged users only
   * their cap_add (as ambient capabilities, which only the OCI renderer can express).
   */
  readonly capabilities: readonly string[];
}

/** PATH of the host commands a runtime runs for a task (never the plugin's own, never the task's). */
export const HOST_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/** `CAP_NET_BIND_SERVICE`: upper-case capability names as the kernel headers spell them. */
const CAPABILITY_NAME = /^CAP_[A-Z_]+$/;

function invalid(what: string, cause: string, fix: string): Error {
  return failure(what, cause, { code: 'invalid_argument', fix });
}

/** Throws an `invalid_argument` DriverError (verb `what`) naming the first bad field. */
export function validateProcessSpec(what: string, process: ProcessSpec): void {
  const command = process.argv[0];
  if (command === undefined) throw invalid(what, 'argv is empty', "set the task's command");
  const pathProblem = (field: string, path: string, fix: string) => {
    const problem = absolutePathProblem(path);
    if (problem !== undefined) throw invalid(what, `${field} ${quote(path)} ${problem}`, fix);
  };
  pathProblem('argv[0]', command, 'resolve the command to an absolute path inside the task root');
  for (const [index, arg] of process.argv.entries()) {
    if (arg.includes('\0')) throw invalid(what, `argv[${index}] ${quote(arg)} contains a NUL byte`, "remove the NUL byte from the task's args");
  }
  for (const [name, value] of Object.entries(process.env)) {
    const problem = name.length === 0 ? 'is empty' : name.includes('=') ? 'contains "="' : name.includes('\0') ? 'contains a NUL byte' : undefined;
    if (problem !== undefined) throw invalid(what, `env name ${quote(name)} ${problem}`, "rename the variable in the task's env block");
    if (value.includes('\0')) throw invalid(what, `env ${name} value ${quote(value)} contains a NUL byte`, 'remove the NUL byte from the variable');
  }
  pathProblem('cwd', process.cwd, 'set work_dir to an absolute path inside the task, e.g. "/local"');
  if (process.hostname !== undefined && !/^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/.test(process.hostname)) {
    throw invalid(what, `hostname ${quote(process.hostname)} is not a host name of at most 64 letters, digits, "-" and "."`, 'set a valid hostname');
  }
  for (const id of ['uid', 'gid'] as const) {
    const value = process[id];
    if (!Number.isSafeInteger(value) || value < 0 || value > 0xfffffffe) {
      throw invalid(what, `${id} ${quote(value)} is not a valid id`, `run the task as a user with a ${id} between 0 and 4294967294`);
    }
  }
  for (const cap of process.capabilities) {
    if (!CAPABILITY_NAME.test(cap))
      throw invalid(what, `capability ${quote(cap)} is not a name such as CAP_NET_BIND_SERVICE`, 'spell capabilities as CAP_ followed by the upper-case name');
  }
}

/**
 * The oom_score_adj a task starts with (proc(5): -1000 never killed … 1000 killed first).
 * Nomad's own executor sets 0 for its tasks (hashicorp/nomad v1.11.3
 * drivers/shared/executor/executor_linux_cgo.go: "children should not inherit Nomad agent
 * oom_score_adj value"): HashiCorp's nomad.service runs the agent, and so the plugin, at -1000.
 */
export const TASK_OOM_SCORE_ADJ = 0;

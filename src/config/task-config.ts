/**
 * A task's `config { ... }` block for `driver = "nix"`: schema, defaults and documentation in
 * one place; the README's "Task options" table is rendered from it. Pure: no I/O.
 */
import { decodeBlock, field, type BlockContext, type Decoded } from './schema.js';

export const taskConfigFields = {
  flake: field({
    type: 'string',
    doc: 'A flake installable evaluated and built on the client, e.g. `path:/srv/app#web`. Exactly one of `flake` and `store_path` is set.',
    example: 'flake = "path:/srv/app#web"',
  }),
  store_path: field({
    type: 'string',
    doc: 'A prebuilt store path; it is realised (or substituted) but never evaluated.',
    example: 'store_path = "/nix/store/…-web"',
  }),
  packages: field({
    type: 'list(string)',
    default: [],
    doc: 'Extra store paths whose closures join the root; their `bin/` directories go on PATH.',
    example: 'packages = ["/nix/store/…-busybox"]',
  }),
  command: field({
    type: 'string',
    default: '',
    doc: 'Program to run: relative to the main output (e.g. `bin/web`), an absolute store path, or a name on PATH.',
    example: 'command = "bin/web"',
  }),
  args: field({
    type: 'list(string)',
    default: [],
    doc: 'Arguments; Nomad interpolates `${NOMAD_*}` variables.',
    example: 'args = ["-p", "${NOMAD_PORT_http}"]',
  }),
  pids_limit: field({
    type: 'number',
    default: 0,
    doc: 'Maximum number of processes and threads of the task (its cgroup\'s `pids.max`): a fork bomb stops there. 0 means the plugin\'s `pids_limit`.',
    example: 'pids_limit = 256',
    check: (value) =>
      Number.isSafeInteger(value) && value >= 0
        ? undefined
        : { cause: `${JSON.stringify(value)} is not a whole number of 0 or more`, fix: 'set pids_limit to a whole number such as 256, or 0 for the plugin default' },
  }),
  work_dir: field({
    type: 'string',
    default: '',
    doc: 'Working directory inside the task. Empty means `/local`.',
    example: 'work_dir = "/local"',
  }),
} as const;

export type TaskConfig = Decoded<typeof taskConfigFields>;

export const TASK_CONFIG_CONTEXT: BlockContext = {
  what: 'task config',
  where: 'the task\'s config { ... } block',
};

export function decodeTaskConfig(raw: unknown): TaskConfig {
  return decodeBlock(taskConfigFields, raw, TASK_CONFIG_CONTEXT);
}

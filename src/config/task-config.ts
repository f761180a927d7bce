/**
 * A task's `config { ... }` block for `driver = "nix"`: schema, defaults and documentation in
 * one place; the README's "Task options" table is rendered from it. Pure: no I/O.
 */
import { capabilityListProblem } from './capabilities.js';
import { decodeBlock, field, type BlockContext, type Decoded } from './schema.js';

export const taskConfigFields = {
  flake: field({
    type: 'string',
    doc: 'A flake installable evaluated (purely, without the flake\'s `nixConfig`) and built on the client: `github:`, `gitlab:`, `sourcehut:`, `git+https:`, `git+ssh:`, an `https:` tarball or a registry id such as `nixpkgs#hello`; `path:` and `git+file:` only below the plugin\'s `allow_local_flakes`. Anything else (bare paths, `file:`, options such as `--impure`) fails the task (README "Security model"). Exactly one of `flake` and `store_path` is set.',
    example: 'flake = "github:owner/repo#web"',
  }),
  store_path: field({
    type: 'string',
    doc: 'A prebuilt output path `/nix/store/<hash>-<name>` (not a `.drv`); when missing it is substituted from the configured caches, never evaluated or built.',
    example: 'store_path = "/nix/store/…-web"',
  }),
  nar_hash: field({
    type: 'string',
    doc: "Pins the NAR hash of the task's main store path (`store_path`, or the flake's output) in SRI form, as `nix path-info --json` reports `narHash`. Checked after the closure is realised and before anything runs, also when the path was already on the client (against the hash Nix recorded when it became valid); a mismatch fails the task.",
    example: 'nar_hash = "sha256-Rib7/YwUDDB5/u6541P/+IWw5G/Qm5V4GRbt/81xgHs="',
    check: (value) =>
      /^sha256-[A-Za-z0-9+/]{43}=$/.test(value)
        ? undefined
        : {
            cause: `${JSON.stringify(value)} is not an SRI SHA-256 hash ("sha256-" and 44 base64 characters)`,
            fix: 'set nar_hash to the narHash nix path-info --json <store path> prints for it, e.g. "sha256-Rib7/YwUDDB5/u6541P/+IWw5G/Qm5V4GRbt/81xgHs="',
          },
  }),
  closure_cache: field({
    type: 'string',
    doc: 'A binary-cache directory in the task\'s `local/` (what `nix copy --to file://…` writes, e.g. shipped as a tarball by an `artifact` with a checksum) that `store_path` and `packages` are also fetched from, under the same signature rules as the plugin\'s `substituters` (README "Shipping closures"). Read only when the closure is not on the client yet. Needs `store_path`.',
    example: 'closure_cache = "local/closure"',
  }),
  packages: field({
    type: 'list(string)',
    default: [],
    doc: 'Extra output store paths (no `.drv`) whose closures join the root; their `bin/` directories go on PATH.',
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
    doc: "Maximum number of processes and threads of the task (its cgroup's `pids.max`): a fork bomb stops there. 0 means the plugin's `pids_limit`.",
    example: 'pids_limit = 256',
    check: (value) =>
      Number.isSafeInteger(value) && value >= 0
        ? undefined
        : {
            cause: `${JSON.stringify(value)} is not a whole number of 0 or more`,
            fix: 'set pids_limit to a whole number such as 256, or 0 for the plugin default',
          },
  }),
  work_dir: field({
    type: 'string',
    default: '',
    doc: 'Working directory inside the task. Empty means `/local`.',
    example: 'work_dir = "/local"',
  }),
  cap_add: field({
    type: 'list(string)',
    default: [],
    doc: 'Linux capabilities to add to the task\'s set, each one within the plugin\'s `allow_caps` (any case, with or without `CAP_`). A root task starts from the default set; a non-root task has none, and gets these as ambient capabilities with `runtime = "runc"` (bubblewrap cannot grant any to a non-root task, which then fails).',
    example: 'cap_add = ["NET_BIND_SERVICE"]',
    check: (value) => capabilityListProblem('cap_add', value, { allowAll: false }),
  }),
  cap_drop: field({
    type: 'list(string)',
    default: [],
    doc: 'Linux capabilities to remove from a root task\'s default set; `"ALL"` removes every one (`cap_add` is applied after it).',
    example: 'cap_drop = ["ALL"]',
    check: (value) => capabilityListProblem('cap_drop', value, { allowAll: true }),
  }),
  fhs_links: field({
    type: 'bool',
    default: true,
    doc: "Give the task `/bin/sh` and `/usr/bin/env` as symlinks to the first `sh` and `env` on its PATH (main output, then `packages`) that lie inside its closure, never the host's: glibc's `system()` and `popen()` run `/bin/sh`, scripts start with `#!/usr/bin/env`. A closure without them gets no link. Off, the root has no path outside its mounts.",
    example: 'fhs_links = false',
  }),
} as const;

export type TaskConfig = Decoded<typeof taskConfigFields>;

export const TASK_CONFIG_CONTEXT: BlockContext = {
  what: 'task config',
  where: "the task's config { ... } block",
};

export function decodeTaskConfig(raw: unknown): TaskConfig {
  return decodeBlock(taskConfigFields, raw, TASK_CONFIG_CONTEXT);
}

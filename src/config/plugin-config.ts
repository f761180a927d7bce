/**
 * The client's `plugin "nix" { config { ... } }` block: schema, defaults, documentation and
 * validation in one place. The README's "Plugin options" table is rendered from this module.
 * Pure: no I/O.
 */
import { failure } from '../errors.js';
import { LEVELS } from '../log/hclog-format.js';
import { DEFAULT_ROOT_CAPABILITIES, capabilityListProblem, shortCapabilityName } from './capabilities.js';
import { NIX_STORE_DIR, absolutePathProblem, isWithin } from '../paths.js';
import { decodeBlock, field, type BlockContext, type Decoded, type Problem } from './schema.js';

export const RUNTIMES = ['bwrap', 'runc'] as const;
export type RuntimeName = (typeof RUNTIMES)[number];

const WHERE = `the client's plugin "nix" { config { ... } } block`;

/**
 * System directories that may never be the plugin's state_dir or gc_roots_dir themselves: the
 * orphan sweep and DestroyTask remove entries below them, so one of these would put the
 * host's own files in reach (README "Driver state and the orphan sweep").
 */
export const SYSTEM_DIRS: readonly string[] = [
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/media',
  '/mnt',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/usr/bin',
  '/usr/lib',
  '/usr/local',
  '/usr/sbin',
  '/usr/share',
  '/var',
  '/var/cache',
  '/var/lib',
  '/var/log',
  '/var/run',
  '/var/tmp',
  '/nix',
  '/nix/var',
  '/nix/var/nix',
  '/nix/var/nix/gcroots',
  '/nix/var/nix/profiles',
  '/nix/var/log',
];
/** Trees no plugin directory may lie in: kernel file systems, and Nix's own GC roots and profiles. */
export const SYSTEM_TREES: readonly string[] = [
  '/proc',
  '/sys',
  '/dev',
  '/nix/var/nix/gcroots/auto',
  '/nix/var/nix/gcroots/per-user',
  '/nix/var/nix/profiles',
  '/nix/var/nix/db',
];

/**
 * Why `value` is a dangerous plugin directory (`/`, a system directory, inside the store or
 * another system tree), or undefined. `suggestion` is the fix's example directory.
 */
export function dangerousDirProblem(name: string, value: string, suggestion: string): Problem | undefined {
  const fix = `set ${name} to a directory of its own such as ${JSON.stringify(suggestion)} in ${WHERE}`;
  if (isWithin(value, NIX_STORE_DIR)) return { cause: `${JSON.stringify(value)} is inside ${NIX_STORE_DIR}, which the Nix garbage collector empties`, fix };
  if (SYSTEM_DIRS.includes(value)) return { cause: `${JSON.stringify(value)} is a system directory; the driver removes entries below ${name}`, fix };
  const tree = SYSTEM_TREES.find((t) => isWithin(value, t));
  if (tree !== undefined)
    return { cause: `${JSON.stringify(value)} lies in ${tree}, which is not the driver's; the driver removes entries below ${name}`, fix };
  return undefined;
}

function absoluteDir(name: string): (value: string) => Problem | undefined {
  return (value) => {
    const problem = absolutePathProblem(value);
    if (problem === undefined) return undefined;
    return { cause: `${JSON.stringify(value)} ${problem}`, fix: `set ${name} to an absolute, normalised path in ${WHERE}` };
  };
}

export const pluginConfigFields = {
  runtime: field({
    type: 'string',
    default: 'bwrap',
    oneOf: RUNTIMES,
    doc: 'Program that launches tasks: bubblewrap (`bwrap`) or an OCI runtime (`runc`). Both get the same closure-only root.',
    example: 'runtime = "runc"',
  }),
  nix_bin: field({
    type: 'string',
    default: '',
    doc: "Directory holding the `nix` and `nix-store` binaries. Empty means: look them up on the agent's PATH.",
    example: 'nix_bin = "/nix/var/nix/profiles/default/bin"',
    check: (value) => (value === '' ? undefined : absoluteDir('nix_bin')(value)),
  }),
  nix_options: field({
    type: 'list(string)',
    default: [],
    doc: "Nix settings, one nix.conf line each (`name = value`), passed as `--option name value` to every nix command the driver runs (substituters, trusted keys, builders, …), on top of the client's nix.conf. (A list, not a map: the agent's HCL1 config cannot pass maps to plugins.)",
    example: 'nix_options = ["substituters = https://cache.example.org", "trusted-public-keys = cache.example.org-1:…"]',
    check: (value) => {
      const bad = value.find((line) => parseNixOption(line) === undefined);
      return bad === undefined
        ? undefined
        : {
            cause: `${JSON.stringify(bad)} is not a nix.conf line "name = value"`,
            fix: 'write each entry as "name = value", e.g. "substituters = https://cache.example.org"',
          };
    },
  }),
  state_dir: field({
    type: 'string',
    default: '/var/lib/nomad-driver-nix',
    doc: 'Directory for per-task state files and cached store views. Must be on the same filesystem as /nix/store for hardlinked store views. A directory of the driver\'s own: `/`, system directories such as `/var/lib`, and paths in /nix/store are refused (README "Driver state and the orphan sweep").',
    example: 'state_dir = "/var/lib/nomad-driver-nix"',
    check: (value) => absoluteDir('state_dir')(value) ?? dangerousDirProblem('state_dir', value, '/var/lib/nomad-driver-nix'),
  }),
  gc_roots_dir: field({
    type: 'string',
    default: '/nix/var/nix/gcroots/nomad-driver-nix',
    doc: "Directory where one Nix GC root per running task is kept, so `nix-store --gc` never deletes a closure in use. A directory of the driver's own below /nix/var/nix/gcroots: that directory itself, Nix's `auto` and `per-user` roots, system directories and paths in /nix/store are refused.",
    example: 'gc_roots_dir = "/nix/var/nix/gcroots/nomad-driver-nix"',
    check: (value) => {
      const problem = absoluteDir('gc_roots_dir')(value);
      if (problem !== undefined) return problem;
      return dangerousDirProblem('gc_roots_dir', value, '/nix/var/nix/gcroots/nomad-driver-nix');
    },
  }),
  runc_init: field({
    type: 'string',
    default: '',
    doc: 'With `runtime = "runc"`: a statically linked init that runs as PID 1 of every task (it reaps zombies and passes signals on to the command). Empty means: `tini-static` on the agent\'s PATH (Debian/Ubuntu package `tini`).',
    example: 'runc_init = "/usr/bin/tini-static"',
    check: (value) => (value === '' ? undefined : absoluteDir('runc_init')(value)),
  }),
  pids_limit: field({
    type: 'number',
    default: 0,
    doc: 'Default maximum number of processes and threads per task (cgroup `pids.max`) for tasks without their own `pids_limit`. 0 means no limit.',
    example: 'pids_limit = 4096',
    check: (value) =>
      Number.isSafeInteger(value) && value >= 0
        ? undefined
        : {
            cause: `${JSON.stringify(value)} is not a whole number of 0 or more`,
            fix: `set pids_limit to a whole number such as 4096, or 0 for no limit, in ${WHERE}`,
          },
  }),
  orphan_grace: field({
    type: 'string',
    default: '5m',
    doc: 'How long after the plugin starts it waits for Nomad to recover its tasks (RecoverTask) before it removes what tasks nobody recovered left behind: their processes, cgroups, GC roots, state and unused store views (README "Recovery"). A Go-style duration such as `90s`, `5m` or `1h`.',
    example: 'orphan_grace = "10m"',
    check: (value) =>
      parseDurationMs(value) === undefined
        ? {
            cause: `${JSON.stringify(value)} is not a duration such as "90s", "5m" or "1h30m"`,
            fix: `set orphan_grace to a duration of at least 1s in ${WHERE}`,
          }
        : undefined,
  }),
  allow_root: field({
    type: 'bool',
    default: false,
    doc: 'Allow tasks to run as root (`user = "root"`). Off by default: tasks run as their `user`, else as `nobody`, and a root task fails with a message naming this option.',
    example: 'allow_root = true',
  }),
  allow_caps: field({
    type: 'list(string)',
    default: DEFAULT_ROOT_CAPABILITIES.map(shortCapabilityName),
    doc: "Linux capabilities tasks may have, as the `allow_caps` of Nomad's exec driver. A root task keeps those of Nomad's default set (this option's default) that are listed here, minus its `cap_drop`, plus its `cap_add`; a `cap_add` not listed here fails the task with a message naming it. Any case, with or without `CAP_`; `\"ALL\"` allows every capability.",
    example: 'allow_caps = ["CHOWN", "KILL", "NET_BIND_SERVICE", "NET_RAW"]',
    check: (value) => {
      const problem = capabilityListProblem('allow_caps', value, { allowAll: true });
      return problem === undefined ? undefined : { cause: problem.cause, fix: `${problem.fix} in ${WHERE}` };
    },
  }),
  allow_volumes: field({
    type: 'bool',
    default: true,
    doc: "Bind the volumes Nomad mounts into a task (the task's `volume_mount` of a group `volume` of type `host` or `csi`, and mounts of device plugins). Nomad already decides which host volumes a job may use; off, a task with any mount fails with a message naming this option.",
    example: 'allow_volumes = false',
  }),
  allow_local_flakes: field({
    type: 'list(string)',
    default: [],
    doc: 'Host directories whose flakes jobs may name with `path:` or `git+file:` (e.g. `flake = "path:/srv/flakes/app#web"`); Nix copies such a flake into the world-readable store. Empty: jobs may name no directory of the client, only remote flakes and store paths. Checked with symlinks resolved; a flake in or holding Nomad\'s allocation directories is refused even here (README "Security model").',
    example: 'allow_local_flakes = ["/srv/flakes"]',
    check: (value) => {
      for (const dir of value) {
        const problem = absolutePathProblem(dir);
        if (problem !== undefined)
          return { cause: `${JSON.stringify(dir)} ${problem}`, fix: `list absolute, normalised directories in allow_local_flakes in ${WHERE}` };
        if (dir === '/' || isWithin(NIX_STORE_DIR, dir) || isWithin(dir, NIX_STORE_DIR)) {
          const why = dir === '/' ? 'is the whole file system' : isWithin(dir, NIX_STORE_DIR) ? `is inside ${NIX_STORE_DIR}` : `holds ${NIX_STORE_DIR}`;
          return {
            cause: `${JSON.stringify(dir)} ${why}`,
            fix: `list only directories that hold flakes jobs may use (e.g. "/srv/flakes") in allow_local_flakes in ${WHERE}`,
          };
        }
      }
      return undefined;
    },
  }),
  log_level: field({
    type: 'string',
    default: '',
    oneOf: ['', ...LEVELS],
    doc: "Level of the plugin's own log lines (the agent drops lines below its own level too). Empty means: the NOMAD_DRIVER_NIX_LOG_LEVEL environment variable, else `info`.",
    example: 'log_level = "debug"',
  }),
} as const;

export type PluginConfig = Decoded<typeof pluginConfigFields>;

export const PLUGIN_CONFIG_CONTEXT: BlockContext = { what: 'plugin config', where: WHERE };

/** Decodes and validates the plugin config value Nomad sent in SetConfig. */
export function decodePluginConfig(raw: unknown): PluginConfig {
  const config = decodeBlock(pluginConfigFields, raw, PLUGIN_CONFIG_CONTEXT);
  const { state_dir: state, gc_roots_dir: roots } = config;
  if (isWithin(state, roots) || isWithin(roots, state)) {
    throw failure(
      `decode ${PLUGIN_CONFIG_CONTEXT.what}`,
      `field "gc_roots_dir": ${JSON.stringify(roots)} and state_dir ${JSON.stringify(state)} overlap; the driver removes entries below each`,
      {
        code: 'invalid_argument',
        fix: `give gc_roots_dir and state_dir separate directories (e.g. "/nix/var/nix/gcroots/nomad-driver-nix" and "/var/lib/nomad-driver-nix") in ${WHERE}`,
      },
    );
  }
  return config;
}

/** The configuration in force before SetConfig is called. */
export function defaultPluginConfig(): PluginConfig {
  return decodePluginConfig({});
}

/** `90s`, `5m`, `1h30m`, `500ms` → milliseconds (at least 1 s); undefined otherwise. */
export function parseDurationMs(text: string): number | undefined {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const match of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(match[1]) * (units[match[2] ?? ''] ?? 0);
  return total >= 1000 ? Math.round(total) : undefined;
}

/** `substituters = a b` → ['substituters', 'a b']; undefined when it is not a nix.conf line. */
export function parseNixOption(line: string): [string, string] | undefined {
  const match = /^\s*([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$/.exec(line);
  return match === null ? undefined : [match[1] ?? '', match[2] ?? ''];
}

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
    doc: "Nix settings, one nix.conf line each (`name = value`), passed as `--option name value` to every nix command the driver runs (builders, max-jobs, …), on top of the client's nix.conf. Which caches and keys Nix trusts is set by `substituters`, `trusted_public_keys` and `require_signatures` alone: a line naming one of Nix's trust settings (`substituters`, `trusted-public-keys`, `require-sigs`, their `extra-` forms and old aliases) is refused. (A list, not a map: the agent's HCL1 config cannot pass maps to plugins.)",
    example: 'nix_options = ["max-jobs = 4", "connect-timeout = 5"]',
    check: (value) => {
      const bad = value.find((line) => parseNixOption(line) === undefined);
      if (bad !== undefined)
        return {
          cause: `${JSON.stringify(bad)} is not a nix.conf line "name = value"`,
          fix: 'write each entry as "name = value", e.g. "max-jobs = 4"',
        };
      for (const line of value) {
        const [name = ''] = parseNixOption(line) ?? [];
        const option = TRUST_SETTINGS[name.replace(/^extra-/, '')];
        if (option !== undefined)
          return {
            cause: `${JSON.stringify(line)} sets Nix's ${name}, which the plugin's ${option} decides (the driver passes it to every Nix command after nix_options)`,
            fix: `remove it from nix_options and set ${option} in ${WHERE}`,
          };
      }
      return undefined;
    },
  }),
  substituters: field({
    type: 'list(string)',
    doc: "Binary caches Nix may fetch store paths from, in order (Nix's `substituters`, replacing the client's nix.conf), e.g. `https://cache.example.org` or `file:///srv/cache`. Unset: the nix.conf's. `[]`: none, every path must already be on the client or be built there. A cache URL with `trusted=1`, which would skip signature checks, is refused while `require_signatures` is on (README \"Shipping closures\").",
    example: 'substituters = ["https://cache.example.org"]',
    check: (value) => {
      for (const url of value) {
        if (!/^[a-z][a-z0-9+.-]*:\/\/[^\s]+$/.test(url))
          return {
            cause: `${JSON.stringify(url)} is not a binary cache URL (<scheme>://…, without spaces)`,
            fix: `list cache URLs such as "https://cache.example.org" or "file:///srv/cache" in substituters in ${WHERE}`,
          };
      }
      return undefined;
    },
  }),
  trusted_public_keys: field({
    type: 'list(string)',
    doc: "Public keys (`name:base64`, as `nix key convert-secret-to-public` or `nix-store --generate-binary-cache-key` write them) whose signatures make a fetched path acceptable (Nix's `trusted-public-keys`, replacing the client's nix.conf). Unset: the nix.conf's. Applies to paths entering the store from a cache or an artifact; paths already valid on the client are used as they are (pin them with the task's `nar_hash`).",
    example: 'trusted_public_keys = ["cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]',
    check: (value) => {
      for (const key of value) {
        const match = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(key);
        if (match === null || Buffer.from(match[2] ?? '', 'base64').length !== 32)
          return {
            cause: `${JSON.stringify(key)} is not a Nix public key "<name>:<base64 of 32 bytes>"`,
            fix: `list public keys such as "cache.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" (the .pub file nix-store --generate-binary-cache-key writes) in trusted_public_keys in ${WHERE}`,
          };
      }
      return undefined;
    },
  }),
  require_signatures: field({
    type: 'bool',
    default: true,
    doc: "Refuse a path fetched from a cache unless a key in `trusted_public_keys` signed it (Nix's `require-sigs`, passed to every Nix command whatever the client's nix.conf says). Such a task fails with a message naming the path, the cache and the fix, and leaves nothing in the store. Content-addressed paths (e.g. `nix-store --add`) need no signature: their name is their hash.",
    example: 'require_signatures = true',
  }),
  allow_flakes: field({
    type: 'bool',
    default: true,
    doc: 'Let jobs use `flake` (the client evaluates and builds it as root). Off, the client runs prebuilt `store_path`s only (the production mode: build and sign once, ship through a cache, README "Shipping closures") and a flake task fails with a message naming this option.',
    example: 'allow_flakes = false',
  }),
  allowed_flakes: field({
    type: 'list(string)',
    default: [],
    doc: "Prefixes a job's `flake` must start with, e.g. `github:my-org/`; a prefix not ending in `/`, `:`, `?` or `#` matches only up to one of those (`github:my-org` allows `github:my-org/app` but not `github:my-org-evil/app`). Compared with the reference as written, before Nix resolves registry ids. Empty: any reference the grammar accepts.",
    example: 'allowed_flakes = ["github:my-org/", "git+https://git.example.org/"]',
    check: (value) =>
      value.some((prefix) => prefix === '' || /\s/.test(prefix))
        ? { cause: 'has an empty prefix or one with a space', fix: `list flake reference prefixes such as "github:my-org/" in allowed_flakes in ${WHERE}` }
        : undefined,
  }),
  flake_namespaces: field({
    type: 'list(string)',
    default: [],
    doc: 'Nomad namespaces whose jobs may use `flake`; jobs of other namespaces may run store paths only. Empty: every namespace (as `allow_flakes` and `allowed_flakes` allow).',
    example: 'flake_namespaces = ["dev", "ci"]',
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

/**
 * Nix's trust settings (and their old aliases; an `extra-` prefix is stripped before the
 * lookup) → the plugin option that decides them: nix_options may not set them.
 */
export const TRUST_SETTINGS: Readonly<Record<string, string>> = {
  substituters: 'substituters',
  'binary-caches': 'substituters',
  'trusted-substituters': 'substituters',
  'trusted-binary-caches': 'substituters',
  'trusted-public-keys': 'trusted_public_keys',
  'binary-cache-public-keys': 'trusted_public_keys',
  'require-sigs': 'require_signatures',
};

export type PluginConfig = Decoded<typeof pluginConfigFields>;

export const PLUGIN_CONFIG_CONTEXT: BlockContext = { what: 'plugin config', where: WHERE };

/** Decodes and validates the plugin config value Nomad sent in SetConfig. */
export function decodePluginConfig(raw: unknown): PluginConfig {
  const config = decodeBlock(pluginConfigFields, raw, PLUGIN_CONFIG_CONTEXT);
  const trustedCache = config.require_signatures ? config.substituters?.find((url) => /[?&]trusted=(1|true)(&|$)/.test(url)) : undefined;
  if (trustedCache !== undefined) {
    throw failure(
      `decode ${PLUGIN_CONFIG_CONTEXT.what}`,
      `field "substituters": ${JSON.stringify(trustedCache)} has trusted=1, which makes Nix accept its paths without signatures while require_signatures is on`,
      {
        code: 'invalid_argument',
        fix: `remove trusted=1 from the URL and add the cache's public key to trusted_public_keys in ${WHERE}`,
      },
    );
  }
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

/**
 * The `--option` arguments of the plugin's trust settings, given to every Nix command after
 * nix_options: `require-sigs` always, `substituters` and `trusted-public-keys` when set (lists
 * joined by spaces, as nix.conf writes them; an empty list is `''`: none).
 */
export function trustOptions(config: Pick<PluginConfig, 'require_signatures' | 'substituters' | 'trusted_public_keys'>): string[] {
  return [
    '--option',
    'require-sigs',
    String(config.require_signatures),
    ...(config.substituters === undefined ? [] : ['--option', 'substituters', config.substituters.join(' ')]),
    ...(config.trusted_public_keys === undefined ? [] : ['--option', 'trusted-public-keys', config.trusted_public_keys.join(' ')]),
  ];
}

/** `substituters = a b` → ['substituters', 'a b']; undefined when it is not a nix.conf line. */
export function parseNixOption(line: string): [string, string] | undefined {
  const match = /^\s*([a-z][a-z0-9-]*)\s*=\s*(.*?)\s*$/.exec(line);
  return match === null ? undefined : [match[1] ?? '', match[2] ?? ''];
}

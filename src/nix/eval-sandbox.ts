/**
 * The file-system view of the Nix process that evaluates and builds a job's flake: a mount
 * namespace made by bubblewrap (0.8) that shows an allow-list of the host, rendered as argv.
 * Pure: no I/O; the caller describes the host (FlakeSandboxHost) and spawns the result.
 *
 * Why: Nix runs as root and copies whatever a flake's evaluation names into the world-readable
 * store, before any check can refuse it. Pure evaluation refuses path literals and
 * `builtins.getEnv`, but not a flake input `{ url = "path:/srv/private"; flake = false; }` nor
 * `builtins.fetchTree { type = "path"; path = "/srv/private"; narHash = <wrong>; }`, which Nix 2.8
 * copies before it checks the hash (the error even prints the real hash); `restrict-eval`
 * stops neither (measured). So the process must not see what the job may not read: inside,
 * such a path does not exist and Nix fails with `getting status of '<path>': No such file or
 * directory`.
 *
 * What the process sees (and nothing else; bwrap's root is an empty tmpfs):
 *   - `/nix` read-write: the store, its database, temporary roots, the daemon socket;
 *   - `/usr` read-only, and `/bin`, `/sbin`, `/lib*` as on the host (symlinks or read-only);
 *   - from `/etc` only what Nix, git and the resolver read (ETC_ENTRIES): no `shadow`, no
 *     `ssl/private`, no Nomad or plugin configuration, and from `/etc/nix` only `nix.conf` and
 *     `registry.json` (not `netrc`: whatever the process can read, a flake can copy; so
 *     `nix.conf` itself must hold no secret such as `access-tokens`);
 *   - a fresh `/tmp` (tmpfs; Nix's build directories are there, in memory);
 *   - `home` read-write as HOME and `$HOME/.cache` (Nix's fetcher cache of remote flakes);
 *   - each `allow_local_flakes` directory read-only, at its resolved path (the only local
 *     flakes a job may name, driver/local-flake.ts, and Nix is given resolved paths);
 *   - the directory of the `nix` binary read-only when it is outside `/usr` and `/nix`;
 *   - its own `/proc` (new PID namespace) and a minimal `/dev`; the host's network (flakes fetch).
 * Not there: `/root`, `/home`, `/var` (Nomad's data_dir and its allocations' secrets), `/run`,
 * the plugin's state_dir (except `home`), `/srv`, `/opt`, `/mnt`, ...
 *
 * bwrap is started by root without a user namespace, so Nix keeps root's capabilities and its
 * own build sandbox (namespaces, chroot, `nixbld` build users) still works inside. One detail:
 * bwrap's `--proc` covers the writable parts of /proc (`/proc/irq`, `/proc/bus`, ...) with
 * read-only binds, and the kernel lets a process mount a new procfs (Nix does, for each build)
 * only when some procfs of its mount namespace is fully visible; so a small shell prelude mounts
 * a clean procfs of the sandbox's PID namespace over `/proc` first (without it every build
 * fails: `mounting /proc: Operation not permitted`). The job's flake reaches that shell only as
 * a positional argument (`"$@"`), never as script text.
 */

/** How an entry of the host's `/` that holds programs or libraries looks. */
export type RootEntry = { readonly path: string; readonly kind: 'symlink'; readonly target: string } | { readonly path: string; readonly kind: 'directory' };

/** What the caller found on the host. */
export interface FlakeSandboxHost {
  /** Path of `bwrap`. */
  readonly bwrap: string;
  /** Those of ROOT_ENTRIES that exist: symlinks (merged /usr) with their resolved target, or directories. */
  readonly rootEntries: readonly RootEntry[];
  /** Nix's cache and HOME, read-write (below the plugin's state_dir); it must exist. */
  readonly home: string;
  /** The resolved allow_local_flakes directories (read-only). */
  readonly flakeDirs: readonly string[];
  /** Resolved path of the `nix` binary; its directory is shown when outside /usr and /nix. */
  readonly nix: string;
  /** The caller's environment; only PASS_ENV variables reach Nix (pickEnv). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * The only variables of the plugin's environment Nix gets (bwrap starts from an empty one):
 * which store to use (as for the plugin's nix-store calls), proxies and TLS trust for fetching. Nomad's or Vault's tokens in the agent's environment stay
 * out (Nix could otherwise be made to copy `/proc/self/environ`).
 */
export const PASS_ENV = [
  'NIX_REMOTE',
  'http_proxy',
  'https_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'no_proxy',
  'NO_PROXY',
  'all_proxy',
  'ALL_PROXY',
  'NIX_SSL_CERT_FILE',
  'SSL_CERT_FILE',
] as const;

/** PATH inside the sandbox. */
export const SANDBOX_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';

/** The entries of `/` the sandbox recreates when the host has them. */
export const ROOT_ENTRIES = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'] as const;

/**
 * The only `/etc` entries shown (read-only, each only when the host has it): the dynamic
 * loader's cache (without it each of Nix's libraries is searched for: +40 ms per start), users and groups
 * (build users, `getpwuid`), name resolution, Nix's own config and registry, TLS trust anchors
 * (`ssl/certs` only: `ssl/private` holds keys), git's system config and the time zone.
 */
export const ETC_ENTRIES = [
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/passwd',
  '/etc/group',
  '/etc/nsswitch.conf',
  '/etc/hosts',
  '/etc/host.conf',
  '/etc/resolv.conf',
  '/etc/gai.conf',
  '/etc/services',
  '/etc/protocols',
  '/etc/nix/nix.conf',
  '/etc/nix/registry.json',
  '/etc/ssl/certs',
  '/etc/ca-certificates',
  '/etc/pki/tls/certs',
  '/etc/pki/ca-trust',
  '/etc/gitconfig',
  '/etc/localtime',
] as const;

/** Mounts a clean procfs of the sandbox's PID namespace, then runs its arguments. */
export const PROC_PRELUDE = 'mount -t proc -o nosuid,nodev,noexec proc /proc && exec "$@"';

/**
 * The argv that runs `nix <args…>` in the sandbox: `[bwrap, …options, '--', '/bin/sh', '-c',
 * PROC_PRELUDE, 'nix-flake-sandbox', nix, …args]`. Environment: PATH (SANDBOX_PATH), HOME,
 * XDG_CACHE_HOME, TMPDIR, and the PASS_ENV variables the caller has; nothing else.
 */
export function flakeSandboxArgv(host: FlakeSandboxHost, nixArgs: readonly string[]): string[] {
  return [host.bwrap, ...flakeSandboxOptions(host), '--', '/bin/sh', '-c', PROC_PRELUDE, 'nix-flake-sandbox', host.nix, ...nixArgs];
}

/** The bwrap options (before `--`) of flakeSandboxArgv. */
export function flakeSandboxOptions(host: FlakeSandboxHost): string[] {
  const args: string[] = [
    // bwrap dies with the plugin's Nix call (cancel, timeout), and everything in it with bwrap
    '--die-with-parent',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    // the store, its database and locks: Nix writes them
    '--bind',
    '/nix',
    '/nix',
    '--ro-bind',
    '/usr',
    '/usr',
  ];
  for (const entry of host.rootEntries) {
    if (entry.kind === 'symlink') args.push('--symlink', entry.target, entry.path);
    else args.push('--ro-bind', entry.path, entry.path);
  }
  for (const path of ETC_ENTRIES) args.push('--ro-bind-try', path, path);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  // after /tmp: these may lie below it (binds on top of the fresh tmpfs)
  const nixDir = host.nix.slice(0, host.nix.lastIndexOf('/')) || '/';
  if (!['/usr', '/nix'].some((top) => nixDir === top || nixDir.startsWith(`${top}/`))) args.push('--ro-bind', nixDir, nixDir);
  for (const dir of host.flakeDirs) args.push('--ro-bind', dir, dir);
  args.push('--bind', host.home, host.home);
  args.push(
    '--clearenv',
    '--setenv',
    'PATH',
    SANDBOX_PATH,
    '--setenv',
    'HOME',
    host.home,
    '--setenv',
    'XDG_CACHE_HOME',
    `${host.home}/.cache`,
    '--setenv',
    'TMPDIR',
    '/tmp',
  );
  for (const name of PASS_ENV) {
    const value = host.env[name];
    if (value !== undefined) args.push('--setenv', name, value);
  }
  args.push('--chdir', '/');
  return args;
}

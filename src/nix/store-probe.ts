/**
 * Gathers NixStoreFacts (nix/store-health.ts) on the real host for the fingerprint, which
 * runs every few seconds: the effective settings come from `nix show-config --json` with the
 * plugin's nix_options (so nix.conf, NIX_CONFIG, NIX_REMOTE and the options all count, as
 * Nix combines them), cached until the nix binary, a nix.conf, the options or the environment
 * change, and for at most a minute (nix.conf may `include` other files); the rest are a few
 * stat/access calls, a group lookup and, for a daemon store, one connect.
 */
import { homedir } from 'node:os';
import { runCommand } from '../host/exec.js';
import { dirState, exists, fileState, readWritable, socketAccepts } from '../host/fs-probe.js';
import { groupMembers } from '../host/unix-group.js';
import { fileIdentity } from '../host/which.js';
import { DEFAULT_NIX_DIRS, parseNixSettings, resolveAuto, storeKind, type NixStoreFacts, type NixStoreSettings } from './store-health.js';

export interface NixStoreProbeEnv {
  /** The plugin's environment (Nix reads NIX_CONF_DIR, NIX_USER_CONF_FILES, XDG_*, NIX_CONFIG, NIX_REMOTE, NIX_STORE_DIR, NIX_STATE_DIR, HOME). */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now?: () => number;
  /** How long settings stay cached when no file changed (ms; default 60 s). */
  readonly settingsTtlMs?: number;
}

export type NixStoreProbe = (
  nix: string,
  /** `--option name value …` as every nix command the driver runs gets them. */
  extraOptions: readonly string[],
  euid: number,
) => Promise<NixStoreFacts | { readonly problem: string }>;

/** The nix.conf files Nix reads, for the cache key. */
function confFiles(env: NixStoreProbeEnv['env']): string[] {
  const files = [`${env.NIX_CONF_DIR ?? '/etc/nix'}/nix.conf`];
  if (env.NIX_USER_CONF_FILES !== undefined) return [...files, ...env.NIX_USER_CONF_FILES.split(':')];
  const home = env.XDG_CONFIG_HOME ?? `${env.HOME ?? homedir()}/.config`;
  const dirs = [home, ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':')];
  return [...files, ...dirs.map((d) => `${d}/nix/nix.conf`)];
}

/**
 * How long `nix show-config` / `nix config show` may take (ms). Generous on purpose: the
 * settings are read by the health fingerprint, where a slow answer only delays one update,
 * while a timeout marks the driver unhealthy and Nomad places nothing on the node. Nix's
 * start took over 10 s in a cgroups v2 qemu guest under software emulation (issue 15).
 */
const SETTINGS_TIMEOUT_MS = 120_000;

export function createNixStoreProbe(probeEnv: NixStoreProbeEnv): NixStoreProbe {
  const now = probeEnv.now ?? Date.now;
  const ttl = probeEnv.settingsTtlMs ?? 60_000;
  const env = probeEnv.env;
  let cached: { key: string; at: number; settings: NixStoreSettings } | undefined;
  let cachedGroup: { key: string; at: number; members: string[] | undefined } | undefined;

  /** The group's members, cached while /etc/group is unchanged (a miss asks getent, a process). */
  async function members(group: string): Promise<string[] | undefined> {
    const key = JSON.stringify([group, fileIdentity('/etc/group')]);
    if (cachedGroup !== undefined && cachedGroup.key === key && now() - cachedGroup.at < ttl) return cachedGroup.members;
    const found = await groupMembers(group);
    cachedGroup = { key, at: now(), members: found };
    return found;
  }

  async function settings(nix: string, extraOptions: readonly string[]): Promise<NixStoreSettings | { problem: string }> {
    const key = JSON.stringify([
      nix,
      fileIdentity(nix),
      extraOptions,
      confFiles(env).map((f) => fileIdentity(f) ?? ''),
      env.NIX_CONFIG,
      env.NIX_REMOTE,
      env.NIX_STORE_DIR,
      env.NIX_STATE_DIR,
    ]);
    if (cached !== undefined && cached.key === key && now() - cached.at < ttl) return cached.settings;
    const args = (command: readonly string[]) => ['--extra-experimental-features', 'nix-command', ...command, '--json', ...extraOptions];
    try {
      // `show-config`: Nix 2.4 … (a deprecated alias of `config show` since 2.20); `config show`
      // for an implementation that dropped the alias
      const { stdout } = await runCommand(nix, args(['show-config']), { timeoutMs: SETTINGS_TIMEOUT_MS }).catch(async (error: unknown) => {
        try {
          return await runCommand(nix, args(['config', 'show']), { timeoutMs: SETTINGS_TIMEOUT_MS });
        } catch {
          throw error;
        }
      });
      const parsed = parseNixSettings(stdout);
      if (parsed === undefined) {
        return { problem: `${nix} show-config --json printed no "store" and "build-users-group" settings; fix: point nix_bin at a Nix 2.4 or newer` };
      }
      cached = { key, at: now(), settings: parsed };
      return parsed;
    } catch (error) {
      cached = undefined;
      return { problem: `Nix cannot read its settings: ${(error as Error).message}; fix: correct the client's nix.conf or the plugin's nix_options` };
    }
  }

  return async (nix, extraOptions, euid) => {
    const s = await settings(nix, extraOptions);
    if ('problem' in s) return s;
    const dirs = {
      storeDir: env.NIX_STORE_DIR ?? env.NIX_STORE ?? DEFAULT_NIX_DIRS.storeDir,
      stateDir: env.NIX_STATE_DIR ?? DEFAULT_NIX_DIRS.stateDir,
    };
    const store = storeKind(s.store, dirs);
    const facts: { -readonly [K in keyof NixStoreFacts]: NixStoreFacts[K] } = { euid, settings: s, store };
    if (store.kind === 'auto') facts.stateDirAccessible = readWritable(store.stateDir);
    const socketPath = store.kind === 'daemon' || store.kind === 'auto' ? store.socket : undefined;
    if (socketPath !== undefined) {
      const socketExists = exists(socketPath);
      const chosen = resolveAuto(store, facts.stateDirAccessible ?? false, socketExists);
      facts.socket = chosen === 'daemon' ? { exists: socketExists, ...(await socketAccepts(socketPath)) } : { exists: socketExists, accepts: false };
    }
    const chosen = resolveAuto(store, facts.stateDirAccessible ?? false, facts.socket?.exists ?? false);
    if (chosen === 'local' && (store.kind === 'local' || store.kind === 'auto')) {
      facts.storeDir = dirState(store.local.storeDir);
      facts.stateDir = dirState(store.local.stateDir);
      facts.dbDir = dirState(store.local.dbDir);
      facts.dbFile = fileState(`${store.local.dbDir}/db.sqlite`);
      if (euid === 0 && s.buildUsersGroup !== '' && !s.autoAllocateUids) {
        const found = await members(s.buildUsersGroup);
        facts.buildGroup = found === undefined ? { kind: 'missing' } : { kind: 'found', members: found };
      }
    }
    return facts;
  };
}

/**
 * Can Nix realise anything on this client at all? What every `nix build` / `nix-store
 * --realise` the driver runs needs, decided from the effective Nix settings and a few facts
 * about the host, so that a client where every realisation would fail reports an unhealthy
 * driver (with the fix) instead of failing task after task. Pure: the facts are gathered by
 * driver/probe-host.ts.
 *
 * The rules follow Nix's own (libstore, 2.4 … 2.2x):
 *   - `store = auto` (the default, or NIX_REMOTE): the local store when the state dir
 *     (/nix/var/nix) is writable, else the daemon when its socket exists, else the local store;
 *     `local`, `local?root=…` and an absolute path are local stores; `daemon` and `unix://…`
 *     talk to a nix-daemon over its socket; anything else (ssh-ng://, https://, …) is not
 *     checked here.
 *   - A local store opened as root creates its missing directories, takes the lock in its
 *     database directory (`<state>/db`) and writes `db.sqlite`: these must be directories and
 *     writable (or absent, with a writable parent to create them in).
 *   - Root building in a local store runs each build as a member of `build-users-group`
 *     (Nix's UserLock): "the group … specified in 'build-users-group' does not exist" and "the
 *     build users group … has no members" fail every build. Not with an empty
 *     build-users-group, nor with `auto-allocate-uids = true` (Nix ≥ 2.12), nor through a
 *     daemon (whose own build users are its business).
 */

import type { DirState, FileState } from '../host/fs-probe.js';

export type { DirState, FileState };

/** The settings of `nix show-config --json` this check reads. */
export interface NixStoreSettings {
  /** `store`: `auto`, `daemon`, `local`, `local?root=/x`, `/x`, `unix:///path`, `ssh-ng://…`, … */
  readonly store: string;
  /** `build-users-group`; empty means builds run as the calling user. */
  readonly buildUsersGroup: string;
  readonly autoAllocateUids: boolean;
}

/** Where the store's pieces are, from NIX_STORE_DIR / NIX_STATE_DIR (defaults otherwise). */
export interface NixDirs {
  readonly storeDir: string;
  readonly stateDir: string;
}

export const DEFAULT_NIX_DIRS: NixDirs = { storeDir: '/nix/store', stateDir: '/nix/var/nix' };

/** The store Nix opens for `settings.store`, before `auto` is resolved against the host. */
export type StoreKind =
  | { readonly kind: 'auto'; readonly stateDir: string; readonly socket: string; readonly local: LocalStorePaths }
  | { readonly kind: 'local'; readonly local: LocalStorePaths }
  | { readonly kind: 'daemon'; readonly socket: string }
  | { readonly kind: 'other'; readonly uri: string };

export interface LocalStorePaths {
  /** The real store directory (with `root`: `<root>/nix/store`). */
  readonly storeDir: string;
  /** The state directory (with `root`: `<root>/nix/var/nix`). */
  readonly stateDir: string;
  /** `<stateDir>/db`: the SQLite database and the big lock. */
  readonly dbDir: string;
}

/** Which store a `store` setting names (Nix's openStore), and the paths it uses. */
export function storeKind(store: string, dirs: NixDirs = DEFAULT_NIX_DIRS): StoreKind {
  const socket = `${dirs.stateDir}/daemon-socket/socket`;
  const [base = '', query = ''] = store.trim().split('?', 2);
  const params = new Map(
    query === ''
      ? []
      : query.split('&').map((kv) => {
          const at = kv.indexOf('=');
          return at < 0 ? ([kv, ''] as const) : ([kv.slice(0, at), decodeURIComponent(kv.slice(at + 1))] as const);
        }),
  );
  const local = (root: string | undefined): LocalStorePaths => {
    const stateDir = params.get('state') ?? `${root ?? ''}${dirs.stateDir}`;
    return { storeDir: params.get('real') ?? `${root ?? ''}${dirs.storeDir}`, stateDir, dbDir: `${stateDir}/db` };
  };
  if (base === '' || base === 'auto') {
    return { kind: 'auto', stateDir: params.get('state') ?? dirs.stateDir, socket, local: local(params.get('root')) };
  }
  if (base === 'daemon') return { kind: 'daemon', socket };
  if (base.startsWith('unix://')) return { kind: 'daemon', socket: base.slice('unix://'.length) || socket };
  if (base === 'local') return { kind: 'local', local: local(params.get('root')) };
  if (base.startsWith('local://')) return { kind: 'local', local: local(params.get('root')) };
  if (base.startsWith('/')) return { kind: 'local', local: local(base.replace(/\/+$/, '')) };
  return { kind: 'other', uri: store };
}

export type GroupState = { readonly kind: 'missing' } | { readonly kind: 'found'; readonly members: readonly string[] };

/** Facts about the host, gathered for the store `storeKind` chose. */
export interface NixStoreFacts {
  readonly euid: number;
  readonly settings: NixStoreSettings;
  readonly store: StoreKind;
  /** For `auto`: is the state dir readable and writable (Nix: access(R_OK|W_OK))? */
  readonly stateDirAccessible?: boolean;
  /** For `daemon` (and `auto` choosing it): does the socket exist, and does it accept a connection? */
  readonly socket?: { readonly exists: boolean; readonly accepts: boolean; readonly error?: string };
  /** For a local store. */
  readonly storeDir?: DirState;
  readonly stateDir?: DirState;
  readonly dbDir?: DirState;
  readonly dbFile?: FileState;
  /** For a local store opened by root with a non-empty build-users-group. */
  readonly buildGroup?: GroupState;
}

/** The store `auto` resolves to, as Nix 2.x decides it (see the module comment). */
export function resolveAuto(store: StoreKind, stateDirAccessible: boolean, socketExists: boolean): 'local' | 'daemon' | 'other' {
  if (store.kind === 'local' || store.kind === 'daemon' || store.kind === 'other') return store.kind;
  if (stateDirAccessible) return 'local';
  return socketExists ? 'daemon' : 'local';
}

const q = (s: string) => JSON.stringify(s);

const BUILD_USERS_FIX = (group: string) =>
  `create the group and build users in it as Nix's installer does (groupadd --system ${group}; then for i in 1 … 32: useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin --gid ${group} --groups ${group} --comment "Nix build user $i" nixbld$i; scripts/setup.sh does this), or run a nix-daemon and add "store = daemon" to nix_options in the plugin "nix" config`;

/**
 * Every reason why no realisation can succeed with these facts, each "<cause>; fix: <what to
 * do>"; [] when Nix can build. Not root is reported elsewhere (the fingerprint), so a non-root
 * plugin gets no build-users problems here.
 */
export function nixStoreProblems(facts: NixStoreFacts): string[] {
  const problems: string[] = [];
  const { settings, store } = facts;
  const chosen = resolveAuto(store, facts.stateDirAccessible ?? false, facts.socket?.exists ?? false);
  const storeSetting = settings.store === '' ? 'auto' : settings.store;
  if (chosen === 'other') return problems;
  if (chosen === 'daemon') {
    const socket = store.kind === 'daemon' ? store.socket : store.kind === 'auto' ? store.socket : '';
    if (facts.socket !== undefined && !facts.socket.accepts) {
      problems.push(
        `Nix cannot reach its daemon: store = ${q(storeSetting)} talks to a nix-daemon, and nothing accepts connections on ${q(socket)}${facts.socket.error === undefined ? '' : ` (${facts.socket.error})`}; fix: start nix-daemon (systemctl start nix-daemon), or as root use the local store: remove "store" from nix.conf and nix_options`,
      );
    }
    return problems;
  }
  const local = store.kind === 'local' || store.kind === 'auto' ? store.local : undefined;
  if (local === undefined) return problems;
  const dirProblem = (what: string, path: string, state: DirState | undefined, needsWrite: boolean) => {
    if (state === undefined) return;
    if (state.kind === 'not-dir') {
      problems.push(
        `Nix cannot open its store: the ${what} ${q(path)} is not a directory; fix: move it away so Nix can create the directory, or point the store setting (nix.conf or nix_options) at an intact store`,
      );
    } else if (state.kind === 'missing' && !state.creatable) {
      problems.push(
        `Nix cannot open its store: the ${what} ${q(path)} does not exist and cannot be created; fix: create it (mkdir -p ${path}) or point the store setting (nix.conf or nix_options) at an intact store`,
      );
    } else if (state.kind === 'dir' && needsWrite && !state.writable) {
      problems.push(
        `Nix cannot open its store: the ${what} ${q(path)} is not writable${state.error === undefined ? '' : ` (${state.error})`}; fix: make it writable (e.g. remount its filesystem read-write), or run a nix-daemon and add "store = daemon" to nix_options`,
      );
    }
  };
  dirProblem('store directory', local.storeDir, facts.storeDir, false);
  dirProblem('state directory', local.stateDir, facts.stateDir, false);
  dirProblem('database directory', local.dbDir, facts.dbDir, true);
  const db = `${local.dbDir}/db.sqlite`;
  if (facts.dbFile?.kind === 'not-file') {
    problems.push(
      `Nix cannot open its store: its database ${q(db)} is not a regular file; fix: move it away (Nix creates an empty database, forgetting what the store holds) or restore it from a backup`,
    );
  } else if (facts.dbFile?.kind === 'file' && !facts.dbFile.writable) {
    problems.push(
      `Nix cannot open its store: its database ${q(db)} is not writable${facts.dbFile.error === undefined ? '' : ` (${facts.dbFile.error})`}; fix: make it writable (chmod u+w, or remount its filesystem read-write)`,
    );
  }
  if (facts.euid === 0 && settings.buildUsersGroup !== '' && !settings.autoAllocateUids && facts.buildGroup !== undefined) {
    const group = settings.buildUsersGroup;
    if (facts.buildGroup.kind === 'missing') {
      problems.push(
        `Nix cannot build: the group ${q(group)} named by build-users-group does not exist (Nix running as root without a daemon runs every build as one of that group's members); fix: ${BUILD_USERS_FIX(group)}`,
      );
    } else if (facts.buildGroup.members.length === 0) {
      problems.push(
        `Nix cannot build: the group ${q(group)} named by build-users-group has no members (Nix running as root without a daemon runs every build as one of them); fix: ${BUILD_USERS_FIX(group)}`,
      );
    }
  }
  return problems;
}

/**
 * The three settings from `nix show-config --json` (Nix 2.4+ and Lix; 2.18+ also call it `nix
 * config show`): each is `{ "value": … }`. Undefined when the output is not that.
 */
export function parseNixSettings(json: string): NixStoreSettings | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const value = (name: string): unknown => {
    const entry = (parsed as Record<string, unknown>)[name];
    return typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>).value : undefined;
  };
  const store = value('store');
  const group = value('build-users-group');
  if (typeof store !== 'string' || typeof group !== 'string') return undefined;
  return { store, buildUsersGroup: group, autoAllocateUids: value('auto-allocate-uids') === true };
}

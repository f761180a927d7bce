/**
 * The flake installables a job may name (`flake = "<flakeref>#<attrpath>"`), as an exact
 * grammar: anything else is refused before Nix sees it. Pure: no I/O.
 *
 * Why: the driver runs Nix as root, and Nix copies what a flake reference names into the
 * world-readable store. A job author (untrusted) must not make it read the client's files, nor
 * pass Nix an option (`--impure`, `--version`) where a positional argument belongs.
 *
 * Accepted (after the URL-like forms of the Nix manual's "Flake references", `nix3-flake(1)`):
 *   - `github:<owner>/<repo>[/<rev-or-ref>]`, the same for `gitlab:` and `sourcehut:`;
 *   - `git+https://<host>/<path>`, `git+ssh://[user@]<host>[:port]/<path>`;
 *   - `https://<host>/<path>.{zip,tar,tgz,tar.gz,tar.xz,tar.bz2,tar.zst}`, `tarball+https://…`;
 *   - indirect ids looked up in the flake registry: `[flake:]<id>[/<rev-or-ref>[/<rev>]]`;
 *   - local: `path:<absolute path>` and `git+file:<absolute path>` (`git+file:///…`). These
 *     are `kind: 'local'`; the driver allows them only below the plugin's `allow_local_flakes`
 *     (checked with symlinks resolved, see `localFlakeProblem`).
 * each with an optional `?param=value&…` (per type: `dir`, `ref`, `rev`, `narHash`, `host`,
 * `submodules`, `shallow`) and an optional `#<attrpath>` (`a.b."c d"`).
 *
 * Refused: anything starting with `-`, bare paths (`/srv/x`, `./x`, `.`, `~/x`), `file:`,
 * `tarball+file:`, `file+file:`, `git+file://host/…`, `http:`, `git:`/`git+http:`, Mercurial,
 * unknown parameters, `..` in `dir`, percent-encoding in local paths, spaces and control
 * characters.
 */
import { isWithin } from '../paths.js';

/** A problem with a value: what is wrong (after `flake "<value>"`), and how to fix it. */
export interface FlakeProblem {
  readonly cause: string;
  readonly fix: string;
}

/** A flake reference whose source is fetched over the network or from the registry. */
export interface RemoteFlake {
  readonly kind: 'remote';
  /** The reference as given (without `#…`). */
  readonly ref: string;
}

/** A flake reference that names a directory of the client (`path:` or `git+file:`). */
export interface LocalFlake {
  readonly kind: 'local';
  readonly scheme: 'path' | 'git+file';
  /** The absolute path as written (not yet resolved). */
  readonly path: string;
  /** The query as written, without `?` ('' when none). */
  readonly query: string;
  /** The `dir` parameter ('' when none): a relative path without `..`. */
  readonly dir: string;
}

/** A parsed installable: where the flake is, and which attribute (`''`: Nix's default). */
export interface FlakeInstallable {
  readonly source: RemoteFlake | LocalFlake;
  readonly attrPath: string;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: FlakeProblem };

/** Longest installable accepted (a generous bound; Nix itself has none). */
export const MAX_FLAKE_LENGTH = 2048;

const LOCAL_HINT = '"path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes';
/** The fix of every grammar problem. */
export const FLAKE_FIX = `set flake to a flake installable such as "github:owner/repo#web", "git+https://example.org/repo#web", "nixpkgs#hello" or ${LOCAL_HINT}, in the task's config { ... } block`;

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz|tar\.xz|tar\.bz2|tar\.zst)$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const URL_PATH = /^(?:\/[A-Za-z0-9._~%+@,;=:!$'()*-]*)*$/;
const LOCAL_PATH = /^\/[A-Za-z0-9._+@,=~/-]*$/;
const NAME = /^[A-Za-z0-9._~%-]+$/;
const REF = /^(?!-)(?!.*\.\.)[A-Za-z0-9._/+-]+$/;
const ATTR_SEGMENT = String.raw`(?:[A-Za-z0-9_'+-]+|"[^"\\]*")`;
const ATTR_PATH = new RegExp(`^${ATTR_SEGMENT}(?:\\.${ATTR_SEGMENT})*$`);

/** Query parameters each kind of reference may carry, and the grammar of each value. */
const PARAM_VALUES: Readonly<Record<string, RegExp>> = {
  dir: /^(?!\/)(?!.*(?:^|\/)\.\.?(?:\/|$))[A-Za-z0-9._+@,=~/-]+$/,
  ref: REF,
  rev: /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/,
  narHash: /^(?:sha256|sha512)[-:][A-Za-z0-9+/=%]+$/,
  host: HOST,
  submodules: /^[01]$/,
  shallow: /^[01]$/,
};
const PARAMS = {
  forge: ['dir', 'ref', 'rev', 'narHash', 'host'],
  git: ['dir', 'ref', 'rev', 'narHash', 'submodules', 'shallow'],
  tarball: ['dir', 'narHash'],
  indirect: ['dir', 'ref', 'rev', 'narHash'],
  path: ['dir', 'narHash'],
} as const;

const fail = (cause: string, fix: string = FLAKE_FIX): Parsed<never> => ({ ok: false, problem: { cause, fix } });

/**
 * Parses `text` as a flake installable of the accepted grammar (module doc). Never throws:
 * returns the problem (`cause` to follow `flake "<text>"`, and the fix).
 */
export function parseFlakeInstallable(text: string): Parsed<FlakeInstallable> {
  if (text.length === 0) return fail('is empty');
  if (text.length > MAX_FLAKE_LENGTH) return fail(`is longer than ${MAX_FLAKE_LENGTH} characters`);
  if (text.startsWith('-')) return fail('starts with "-": Nix would read it as a command-line option, not a flake reference');
  if (hasSpaceOrControl(text)) return fail('contains a space or a control character');
  const hash = text.indexOf('#');
  const ref = hash === -1 ? text : text.slice(0, hash);
  const attrPath = hash === -1 ? '' : text.slice(hash + 1);
  if (hash !== -1 && !ATTR_PATH.test(attrPath)) {
    return fail(`has the attribute path ${JSON.stringify(attrPath)}, which is not NAME(.NAME)* (letters, digits, _ ' + - or "quoted")`);
  }
  const source = parseFlakeRef(ref);
  return source.ok ? { ok: true, value: { source: source.value, attrPath } } : source;
}

/** Whether `text` has whitespace (`\s`) or an ASCII control character (U+0000-U+001F, U+007F). */
function hasSpaceOrControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x1f || code === 0x7f) return true;
  }
  return /\s/.test(text);
}

function parseFlakeRef(ref: string): Parsed<RemoteFlake | LocalFlake> {
  if (ref === '') return fail('has no flake reference before "#"');
  if (/^(\/|\.|~)/.test(ref)) {
    return fail(
      "is a bare path: Nix would read that directory of the client (relative ones from the plugin's working directory)",
      `write a local flake as ${LOCAL_HINT} (the operator allows such directories), or use a remote flake such as "github:owner/repo#web", in the task's config { ... } block`,
    );
  }
  const q = ref.indexOf('?');
  const base = q === -1 ? ref : ref.slice(0, q);
  const query = q === -1 ? '' : ref.slice(q + 1);
  const scheme = /^([a-z][a-z0-9+.-]*):/.exec(base)?.[1];

  if (scheme === 'path' || scheme === 'git+file') return parseLocal(scheme, base.slice(scheme.length + 1), query);
  if (scheme === 'github' || scheme === 'gitlab' || scheme === 'sourcehut') {
    const parts = base.slice(scheme.length + 1).split('/');
    const [owner, repo, revOrRef, ...rest] = parts;
    if (
      owner === undefined ||
      repo === undefined ||
      rest.length > 0 ||
      !NAME.test(owner) ||
      !NAME.test(repo) ||
      owner.startsWith('-') ||
      repo.startsWith('-')
    ) {
      return fail(`is not ${scheme}:<owner>/<repo>[/<branch, tag or commit>]`);
    }
    if (revOrRef !== undefined && !REF.test(revOrRef))
      return fail(`names the branch, tag or commit ${JSON.stringify(revOrRef)}, which is not a valid Git name`);
    return remote(ref, query, PARAMS.forge);
  }
  if (scheme === 'git+https' || scheme === 'git+ssh') {
    const url = parseUrl(base.slice(scheme.length + 1), scheme === 'git+ssh');
    if (url === undefined) return fail(`is not ${scheme}://${scheme === 'git+ssh' ? '[user@]' : ''}<host>[:port]/<path>`);
    return remote(ref, query, PARAMS.git);
  }
  if (scheme === 'https' || scheme === 'tarball+https') {
    const url = parseUrl(base.slice(scheme.length + 1), false);
    if (url === undefined) return fail(`is not ${scheme}://<host>[:port]/<path>`);
    if (scheme === 'https' && !ARCHIVE.test(url.path))
      return fail('is an https URL that does not end in .zip, .tar, .tgz, .tar.gz, .tar.xz, .tar.bz2 or .tar.zst (a tarball flake)');
    return remote(ref, query, PARAMS.tarball);
  }
  if (scheme === 'flake' || scheme === undefined) {
    const parts = (scheme === undefined ? base : base.slice('flake:'.length)).split('/');
    const [id, ...revs] = parts;
    if (id === undefined || !/^[A-Za-z][A-Za-z0-9_-]*$/.test(id) || revs.length > 2 || revs.some((r) => !REF.test(r))) {
      return fail(
        'is not a flake reference: not a known type (github:, gitlab:, sourcehut:, git+https:, git+ssh:, https: tarball, path:, git+file:) nor a registry id such as "nixpkgs" or "nixpkgs/nixos-23.11"',
      );
    }
    return remote(ref, query, PARAMS.indirect);
  }
  if (/(^|\+)file$/.test(scheme) || scheme === 'file') {
    return fail(
      `is a ${scheme}: reference: Nix would read a file of the client`,
      `write a local flake as ${LOCAL_HINT}, or use a remote flake, in the task's config { ... } block`,
    );
  }
  return fail(
    `has the type ${JSON.stringify(`${scheme}:`)}, which this driver does not accept (github:, gitlab:, sourcehut:, git+https:, git+ssh:, https: tarballs, registry ids, and path:/git+file: under allow_local_flakes)`,
  );
}

/** `//[user@]host[:port]/path` → its parts; undefined when it is not that. */
function parseUrl(rest: string, userAllowed: boolean): { readonly host: string; readonly path: string } | undefined {
  const match = /^\/\/(?:([A-Za-z0-9._~%-]+)@)?([^/:@]+|\[[^\]]+\])(?::(\d{1,5}))?(\/.*)?$/.exec(rest);
  if (match === null) return undefined;
  const [, user, host = '', , path = ''] = match;
  if (user !== undefined && !userAllowed) return undefined;
  if (user?.startsWith('-') === true || !HOST.test(host) || !URL_PATH.test(path)) return undefined;
  return { host, path };
}

function remote(ref: string, query: string, allowed: readonly string[]): Parsed<RemoteFlake> {
  const problem = queryProblem(query, allowed);
  return problem === undefined ? { ok: true, value: { kind: 'remote', ref } } : { ok: false, problem };
}

function parseLocal(scheme: 'path' | 'git+file', rest: string, query: string): Parsed<LocalFlake> {
  // git+file:///abs (empty authority) or git+file:/abs; path:/abs
  const path = scheme === 'git+file' && rest.startsWith('//') ? rest.slice(2) : rest;
  if (scheme === 'git+file' && rest.startsWith('//') && !rest.startsWith('///'))
    return fail('names a host after git+file://; a local repository is git+file:///<absolute path>');
  if (!path.startsWith('/'))
    return fail(
      `is a ${scheme}: reference to a relative path (read from the plugin's working directory)`,
      `write an absolute path, e.g. ${LOCAL_HINT}, in the task's config { ... } block`,
    );
  if (!LOCAL_PATH.test(path))
    return fail(
      `names the path ${JSON.stringify(path)}, which has characters other than letters, digits and . _ + @ , = ~ / - (percent-encoding is not accepted)`,
    );
  const problem = queryProblem(query, scheme === 'path' ? PARAMS.path : PARAMS.git);
  if (problem !== undefined) return { ok: false, problem };
  const dir = new URLSearchParams(query).get('dir') ?? '';
  return { ok: true, value: { kind: 'local', scheme, path, query, dir } };
}

function queryProblem(query: string, allowed: readonly string[]): FlakeProblem | undefined {
  if (query === '') return undefined;
  const seen = new Set<string>();
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    if (!allowed.includes(name)) {
      return {
        cause: `has the parameter ${JSON.stringify(name)}, which this kind of reference may not carry here (allowed: ${allowed.join(', ')})`,
        fix: `remove it from flake in the task's config { ... } block`,
      };
    }
    if (seen.has(name)) return { cause: `has the parameter ${JSON.stringify(name)} twice`, fix: `give it once in flake in the task's config { ... } block` };
    seen.add(name);
    if (!(PARAM_VALUES[name]?.test(value) ?? false)) {
      const dir = name === 'dir' ? ' (a relative path inside the flake, without "." or ".." segments)' : '';
      return {
        cause: `has ${name}=${JSON.stringify(value)}, which is not a valid ${name}${dir}`,
        fix: `correct ${name} in flake in the task's config { ... } block`,
      };
    }
  }
  return undefined;
}

/** A directory the operator allows, or one that must stay out of the store, as given and resolved. */
export interface HostDir {
  /** As configured or as Nomad gave it. */
  readonly dir: string;
  /** With symlinks resolved (the same when it does not exist). */
  readonly real: string;
}

/** What the host-side check of a local flake knows. */
export interface LocalFlakeFacts {
  /** The flake's directory (with `dir` appended when set) resolved by realpath; undefined when it does not exist. */
  readonly realPaths: readonly (string | undefined)[];
  /** The plugin's allow_local_flakes, resolved. */
  readonly allowed: readonly HostDir[];
  /** Nomad's allocation directories of this client (the task's alloc dir's parent), resolved. */
  readonly allocRoot: HostDir;
}

const PLUGIN_BLOCK = `the client's plugin "nix" { config { ... } } block`;

/**
 * Why a local flake may not be used, or undefined when it may: every resolved path (the
 * flake's directory, and the `dir` below it) must exist, lie inside one of the allowed
 * directories, and neither lie inside Nomad's allocation directories nor contain them (Nix
 * would copy the tasks' `secrets/` into the world-readable store).
 */
export function localFlakeProblem(flake: LocalFlake, facts: LocalFlakeFacts): FlakeProblem | undefined {
  const offStore = 'build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web"';
  for (const real of facts.realPaths) {
    const names = real === flake.path ? `names ${real}` : `resolves to ${real} (symlinks followed)`;
    if (real === undefined)
      return {
        cause: `names ${flake.path}${flake.dir === '' ? '' : ` (dir ${flake.dir})`}, which does not exist on this client`,
        fix: "check the path in flake in the task's config { ... } block",
      };
    if (isWithin(real, facts.allocRoot.real) || isWithin(facts.allocRoot.real, real)) {
      return {
        cause: `${names}, ${isWithin(real, facts.allocRoot.real) ? 'inside' : 'which holds'} Nomad's allocation directories (${facts.allocRoot.real}): Nix would copy tasks' secrets into the world-readable store`,
        fix: `name a flake outside Nomad's data_dir; ${offStore}`,
      };
    }
    if (!facts.allowed.some((a) => isWithin(real, a.real))) {
      const list = facts.allowed.length === 0 ? 'it lists no directory' : `it lists ${facts.allowed.map((a) => a.dir).join(', ')}`;
      return {
        cause: `${real === flake.path ? `names ${real}, a directory of the client` : names}, which the plugin's allow_local_flakes does not include (${list})`,
        fix: `${offStore}, or let jobs use that directory with allow_local_flakes = ["<dir>"] in ${PLUGIN_BLOCK}`,
      };
    }
  }
  return undefined;
}

/** The installable Nix is given for a local flake: its resolved path, its query, its attribute. */
export function renderLocalInstallable(flake: LocalFlake, realPath: string, attrPath: string): string {
  const prefix = flake.scheme === 'path' ? 'path:' : 'git+file://';
  return `${prefix}${realPath}${flake.query === '' ? '' : `?${flake.query}`}${attrPath === '' ? '' : `#${attrPath}`}`;
}

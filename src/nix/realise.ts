/**
 * Makes a task's closure present in the local store: builds (or substitutes) a flake output or
 * realises a store path, realises the extra packages, and lists every requisite of them.
 *
 * Commands, chosen to work unchanged on Debian's Nix 2.8 and on current Nix and Lix:
 *   - a flake: `nix build --no-link --json --extra-experimental-features 'nix-command flakes'
 *     --log-format internal-json <options> --option accept-flake-config false --option
 *     pure-eval true --no-write-lock-file -- <flake>` (2.8 has `--json` but not
 *     `--print-out-paths`);
 *   - store paths and packages: `nix-store --realise --log-format internal-json <paths>`
 *     (substitutes a missing path, never evaluates or builds anything; 2.8 accepts the log
 *     format too);
 *   - the closure: `nix-store --query --requisites <outputs>`.
 * The caller's extra options (e.g. `--option substituters ''`) go to every command.
 *
 * Job input reaches these argv only as validated data: the flake after `--` (which `nix` 2.8
 * honours: `nix build -- --version` looks for a flake named `--version`), and only when it
 * parses as the flake grammar of flake-ref.ts; store paths only as output paths
 * `/nix/store/<hash>-<name>` (never a `.drv`, which would be built). `nix-store` 2.8 does not
 * end its options at `--` (`nix-store --realise -- --query` runs the query), so its positional
 * arguments are protected by that grammar alone: they start with `/`. The flake is never
 * evaluated with `--impure`, and a flake's `nixConfig` is never applied (accept-flake-config
 * false, given after the plugin's nix_options so they cannot turn it on).
 *
 * Progress comes from the internal-json log on stderr (progress.ts), at most one message per
 * 2 s. Failures are DriverErrors quoting Nix's own error text and naming the derivation or path.
 *
 * Cost when everything is already there (2-core Debian 12 test machine, Nix 2.8, a 2-path
 * closure): each Nix process costs ~20-25 ms, so a store path request that is already valid is
 * answered by one `nix-store --query --requisites` (~30 ms from node; `--realise` + `--query` took ~50 ms),
 * and an unchanged small `path:` flake (2 MB with its busybox) takes ~70 ms, since Nix hashes,
 * copies and evaluates it again; that grows with the flake's size.
 *
 * Realising does not create a GC root: a garbage collection between this call and the caller's
 * gc-roots.ts entry could delete what was just realised. Add the root right after.
 */
import { INTERNAL_FIX, failure, quote, type DriverError } from '../errors.js';
import { entryKind } from '../host/fs.js';
import { runStreaming } from '../host/stream-command.js';
import { NIX_STORE_DIR } from '../paths.js';
import { flakeSandboxArgv, type FlakeSandboxHost } from './eval-sandbox.js';
import { parseFlakeInstallable } from './flake-ref.js';
import { toSriSha256 } from './nar-hash.js';
import { type FetchSummary, NixLogCollector, throttle } from './progress.js';

/** Where the Nix commands are and what every invocation gets in addition. */
export interface NixTools {
  /** Path of `nix`. */
  readonly nix: string;
  /** Path of `nix-store`. */
  readonly nixStore: string;
  /**
   * Appended to every command's options, e.g. `['--option', 'substituters', '']`: the plugin's
   * nix_options, then its trust settings (require-sigs, substituters, trusted-public-keys), so
   * the trust settings win.
   */
  readonly extraOptions: readonly string[];
  /**
   * The names of the keys the plugin trusts (its trusted_public_keys), for messages about a
   * path no trusted key signed; undefined when Nix's own trusted-public-keys apply.
   */
  readonly trustedKeyNames?: readonly string[];
  /**
   * Where `nix build` of a flake runs: in this bubblewrap view of the host (eval-sandbox.ts),
   * so a flake cannot copy host files into the store. The driver always sets it; absent (unit
   * tests of this module only) Nix runs directly. `nix-store` commands run outside: they get
   * validated output paths only and evaluate nothing.
   */
  readonly flakeSandbox?: FlakeSandboxHost;
}

/** What a task asks for: exactly one of `flake` and `storePath`, plus extra store paths. */
export interface RealiseRequest {
  /** A flake installable, e.g. `github:owner/repo#web` or `path:/srv/app#web`. */
  readonly flake?: string;
  /** An output store path (`/nix/store/<hash>-<name>`, not a `.drv`). */
  readonly storePath?: string;
  /** More output store paths the task needs next to the main one. */
  readonly packages: readonly string[];
}

/** The realised closure of a request. */
export interface Realised {
  /** The store path the task runs from (a flake's `out` output, else its first). */
  readonly mainOutput: string;
  /** The realised path of each package, in request order. */
  readonly packageOutputs: readonly string[];
  /** Every requisite of the main output and the packages: sorted, unique. */
  readonly closure: readonly string[];
}

/** Options of one realise call. */
export interface RealiseOptions {
  /** Called with messages like `building /nix/store/…-web.drv`, at most once per 2 s. */
  readonly onProgress?: (message: string) => void;
  readonly signal?: AbortSignal;
  /** Applies to each Nix command separately; no limit when absent. */
  readonly timeoutMs?: number;
  /**
   * More binary caches for store paths and packages (`--option extra-substituters`, after the
   * plugin's trust settings, so the same signature rules apply), e.g. a task's closure_cache
   * `file:///…/local/closure`. Flakes never get them.
   */
  readonly extraSubstituters?: readonly string[];
  /** Called once per Nix command that substituted paths, after it succeeded. */
  readonly onFetched?: (summary: FetchSummary) => void;
}

/** The flag that enables flakes on 2.8 (where they are experimental); later versions accept it too. */
export const FLAKE_FEATURES = ['--extra-experimental-features', 'nix-command flakes'] as const;
const LOG_FORMAT = ['--log-format', 'internal-json'] as const;
/**
 * Given to every flake build after the plugin's options (the last setting wins): a flake's
 * `nixConfig` is not applied and evaluation stays pure (no `builtins.getEnv`, no host paths
 * read by path literals), whatever the client's nix.conf says; and Nix never writes a
 * `flake.lock` into a local flake's directory on the client.
 */
export const FLAKE_SAFETY = ['--option', 'accept-flake-config', 'false', '--option', 'pure-eval', 'true', '--no-write-lock-file'] as const;
/** An output path: `/nix/store/<32-char hash>-<name>`, not a `.drv`. */
const OUTPUT_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/;
const QUERY_TIMEOUT_MS = 120_000;

interface Context {
  readonly tools: NixTools;
  readonly options: RealiseOptions;
  readonly progress: ((message: string) => void) | undefined;
}

/**
 * Realises `request` and returns its main output, package outputs and closure. Throws a
 * DriverError: `invalid_argument` for a bad request or a flake/attribute that does not exist,
 * `failed_precondition` for a failed build or a path that is not valid and cannot be
 * substituted, `unavailable` when cancelled or timed out.
 */
export async function realise(tools: NixTools, request: RealiseRequest, options: RealiseOptions = {}): Promise<Realised> {
  const hasFlake = request.flake !== undefined && request.flake !== '';
  const hasStorePath = request.storePath !== undefined && request.storePath !== '';
  if (hasFlake === hasStorePath) {
    throw failure('realise task closure', hasFlake ? 'both flake and store_path are set' : 'neither flake nor store_path is set', {
      code: 'invalid_argument',
      fix: 'set exactly one of flake and store_path in the task config',
    });
  }
  for (const path of [request.storePath ?? '', ...request.packages].filter((p) => p !== '')) {
    if (!OUTPUT_PATH.test(path) || path.endsWith('.drv')) {
      throw failure('realise task closure', `${quote(path)} is not an output store path /nix/store/<hash>-<name> (a .drv is refused)`, {
        code: 'invalid_argument',
        fix: 'give the output path of a build, e.g. "/nix/store/<hash>-web"',
      });
    }
  }
  if (hasFlake) {
    const parsed = parseFlakeInstallable(request.flake ?? '');
    if (!parsed.ok)
      throw failure('realise task closure', `flake ${quote(request.flake)} ${parsed.problem.cause}`, { code: 'invalid_argument', fix: parsed.problem.fix });
  }
  const progress = options.onProgress === undefined ? undefined : throttle(options.onProgress, { now: () => performance.now() });
  const ctx: Context = { tools, options, progress };

  let mainOutput: string;
  let packageOutputs: string[];
  if (hasFlake) {
    mainOutput = await buildFlake(ctx, request.flake ?? '');
    packageOutputs = await realisePaths(ctx, request.packages, undefined);
  } else {
    const storePath = request.storePath ?? '';
    const known = await closureIfValid(ctx, [storePath, ...request.packages]);
    if (known !== undefined) return { mainOutput: storePath, packageOutputs: [...request.packages], closure: known };
    const outputs = await realisePaths(ctx, [storePath, ...request.packages], storePath);
    mainOutput = outputs[0] ?? storePath;
    packageOutputs = outputs.slice(1);
  }
  const closure = await requisites(ctx, [mainOutput, ...packageOutputs]);
  return { mainOutput, packageOutputs, closure };
}

async function runNix(ctx: Context, file: string, args: readonly string[], what: string) {
  const collector = new NixLogCollector();
  const result = await runStreaming(file, args, {
    onStderrLine: (line) => {
      const message = collector.add(line);
      if (message !== undefined) ctx.progress?.(message);
    },
    ...(ctx.options.signal === undefined ? {} : { signal: ctx.options.signal }),
    ...(ctx.options.timeoutMs === undefined ? {} : { timeoutMs: ctx.options.timeoutMs }),
  });
  if (result.aborted) throw failure(what, 'cancelled while Nix was running', { code: 'unavailable', recoverable: true });
  if (result.timedOut) {
    throw failure(what, `Nix did not finish within ${ctx.options.timeoutMs} ms`, {
      code: 'unavailable',
      recoverable: true,
      fix: 'build or copy the closure to the client beforehand, or allow more time',
    });
  }
  const ended = result.exitCode === null ? `nix was killed by ${result.signal}` : `nix exited with code ${result.exitCode}`;
  const ok = result.exitCode === 0;
  if (ok) {
    const summary = collector.fetchSummary();
    if (summary.paths > 0) ctx.options.onFetched?.(summary);
  }
  return { ok, stdout: result.stdout, text: collector.failureText() ?? ended, collector };
}

async function buildFlake(ctx: Context, flake: string): Promise<string> {
  const what = `realise flake ${quote(flake)}`;
  const args = flakeBuildArgs(ctx.tools, flake);
  const sandbox = ctx.tools.flakeSandbox;
  const [file = ctx.tools.nix, ...argv] = sandbox === undefined ? [ctx.tools.nix, ...args] : flakeSandboxArgv(sandbox, args);
  const run = await runNix(ctx, file, argv, what);
  if (!run.ok) {
    const trust = await substitutionFailure(ctx, what, run.collector, []);
    throw trust ?? (sandbox === undefined ? undefined : hiddenPathFailure(what, run.text)) ?? flakeFailure(what, flake, run.text);
  }
  const output = firstFlakeOutput(run.stdout);
  if (output === undefined) {
    throw failure(what, `nix build printed no output path (stdout: ${quote(run.stdout.slice(0, 200))})`, { code: 'internal', fix: INTERNAL_FIX });
  }
  return output;
}

/** The argv (after `nix`) that builds `flake`: options, then `--`, then the installable. */
export function flakeBuildArgs(tools: Pick<NixTools, 'extraOptions'>, flake: string): string[] {
  return ['build', '--no-link', '--json', ...FLAKE_FEATURES, ...LOG_FORMAT, ...tools.extraOptions, ...FLAKE_SAFETY, '--', flake];
}

/**
 * The main output in `nix build --json` output (`[{"drvPath":…,"outputs":{"out":…}}]`): the
 * first installable's `out`, else its first output. Undefined when there is none.
 */
export function firstFlakeOutput(stdout: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const first: unknown = Array.isArray(parsed) ? parsed[0] : undefined;
  if (typeof first !== 'object' || first === null) return undefined;
  const outputs = (first as { outputs?: unknown }).outputs;
  if (typeof outputs !== 'object' || outputs === null) return undefined;
  const map = outputs as Record<string, unknown>;
  const out = map['out'];
  if (typeof out === 'string') return out;
  return Object.values(map).find((v): v is string => typeof v === 'string');
}

/** The error for a failed `nix build` of `flake`, classified by Nix's message. */
export function flakeFailure(what: string, flake: string, text: string): DriverError {
  if (/does not provide attribute/.test(text)) {
    return failure(what, text, { code: 'invalid_argument', fix: `check the flake attribute in the task's config { flake = ${quote(flake)} }` });
  }
  if (/does not contain a 'flake\.nix'|cannot find flake|is not a valid flake reference|unsupported flake|getting status of '[^']*': No such file/.test(text)) {
    return failure(what, text, { code: 'invalid_argument', fix: `check the flake reference in the task's config { flake = ${quote(flake)} }` });
  }
  const drv = failedDerivation(text);
  return failure(what, text, {
    code: 'failed_precondition',
    fix:
      drv === undefined
        ? `run nix build ${quote(flake)} on the client to see the whole error`
        : `fix the build of ${drv} (its whole log: nix-store --read-log ${drv})`,
  });
}

/**
 * The error for a sandboxed build that named a host path the sandbox does not show (a flake
 * input `path:/…`, `builtins.fetchTree { type = "path"; … }`): Nix says `getting status of
 * '<path>': No such file or directory`. Undefined for other failures.
 */
export function hiddenPathFailure(what: string, text: string): DriverError | undefined {
  const path = /getting status of '(\/[^']*)': No such file or directory/.exec(text)?.[1];
  if (path === undefined) return undefined;
  return failure(
    what,
    `${text} (a flake's evaluation sees only the Nix store, the allow_local_flakes directories and system files; ${quote(path)} is not among them or does not exist)`,
    {
      code: 'invalid_argument',
      fix: "fetch the flake's inputs from the network (github:, git+https:, https:) or from a directory listed in the client's allow_local_flakes",
    },
  );
}

/** The derivation a Nix build failure message names (`builder for '/nix/store/…drv' failed`). */
export function failedDerivation(text: string): string | undefined {
  return /'(\/[^']+\.drv)'[^;]*failed/.exec(text)?.[1];
}

/**
 * Nix's failure on its own narinfo disk cache (`~/.cache/nix/binary-cache-v6.sqlite`), not on
 * the closure: before Nix 2.13, Nix processes that start using a cache at the same moment (two
 * tasks of one job starting on a client) race on the cache's row there and one fails with
 * `executing SQLite statement 'insert or replace into NARs…': constraint failed` (NixOS/nix
 * issue 3898, fixed by pull request 7489). Seen in e2e/cluster.test.ts with Nix 2.8. A rerun
 * finds the row and goes on; the realisation is retried this many times.
 */
const NARINFO_CACHE_RACE = /SQLite[^;]*\(in '[^']*binary-cache-v\d+\.sqlite'\)/;
const NARINFO_CACHE_RETRIES = 2;

/** Realises output paths (substituting missing ones) and returns them, in order. */
async function realisePaths(ctx: Context, paths: readonly string[], storePath: string | undefined): Promise<string[]> {
  if (paths.length === 0) return [];
  const what = realiseWhat(paths, storePath);
  const extra = ctx.options.extraSubstituters ?? [];
  const substituters = extra.length === 0 ? [] : ['--option', 'extra-substituters', extra.join(' ')];
  const argv = ['--realise', ...LOG_FORMAT, ...ctx.tools.extraOptions, ...substituters, ...paths];
  let run = await runNix(ctx, ctx.tools.nixStore, argv, what);
  for (let retry = 0; !run.ok && retry < NARINFO_CACHE_RETRIES && NARINFO_CACHE_RACE.test(run.text); retry += 1) {
    run = await runNix(ctx, ctx.tools.nixStore, argv, what);
  }
  if (!run.ok) throw (await substitutionFailure(ctx, what, run.collector, paths)) ?? (await pathFailure(ctx, paths, storePath, run.text));
  return [...paths];
}

/** `the substitute for '<path>' from '<cache>' is not signed by any of the keys in 'trusted-public-keys'` (Nix 2.8 to 2.2x, Lix). */
const UNTRUSTED = /the substitute for '(\/nix\/store\/[^']+)' from '([^']+)' is not signed by any of the keys/;
/** `hash mismatch importing path '<path>'; specified: <hash> got: <hash>` (oneLine'd). */
const NAR_MISMATCH = /hash mismatch importing path '(\/nix\/store\/[^']+)';?\s*specified:\s*(\S+)\s*got:\s*(\S+)/;

/**
 * The error for a Nix command that failed while substituting: a path no trusted key signed, a
 * NAR that does not match its narinfo, or another failure while copying a path from a cache;
 * each names the path, the cache and the fix. First removes what the failed copies left in
 * the store (a path Nix unpacked but never registered). Undefined when the failure was not
 * about substitution.
 */
async function substitutionFailure(ctx: Context, what: string, log: NixLogCollector, requested: readonly string[]): Promise<DriverError | undefined> {
  const untrusted = log.warnings.map((w) => UNTRUSTED.exec(w)).find((m) => m !== null);
  const mismatch = log.errors.map((e) => NAR_MISMATCH.exec(oneLineText(e))).find((m) => m !== null);
  const copies = [...log.copies];
  if (copies.length > 0 || untrusted !== undefined) await removeHalfImported(ctx, [...new Set([...copies.map(([p]) => p), ...requested])]);
  if (mismatch !== undefined) {
    const [, path = '', specified = '', got = ''] = mismatch;
    const cache = log.copies.get(path) ?? 'its substituter';
    return failure(
      what,
      `the NAR of '${path}' from '${cache}' does not match its narinfo (NarHash ${specified}, the NAR hashes to ${got}): the cache's copy is corrupt or was altered, and nothing of it was kept`,
      {
        code: 'failed_precondition',
        fix: `push the path to the cache again from a store where it is valid (nix copy --to ${cache} ${path}), and check who can write to the cache`,
      },
    );
  }
  // a store path can only be fetched, so a refused substitute is the cause; a flake's build may
  // have failed on its own after Nix fell back to building what it would not fetch
  const refusedIsCause = requested.length > 0 || !log.errors.some((e) => /builder for '/.test(e));
  if (untrusted !== undefined && log.errors.length > 0 && refusedIsCause) {
    const [, path = '', cache = ''] = untrusted;
    const signers = await signersIn(ctx, cache, path);
    const trusted =
      ctx.tools.trustedKeyNames === undefined
        ? "the keys in Nix's own trusted-public-keys"
        : ctx.tools.trustedKeyNames.length === 0
          ? 'trusted_public_keys lists no key'
          : `trusted: ${ctx.tools.trustedKeyNames.join(', ')}`;
    const has = signers === undefined ? 'no trusted signature' : signers.length === 0 ? 'no signature' : `only signatures of ${signers.join(', ')}`;
    const sign = `sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${cache} ${path}; nix sign-paths before Nix 2.9)`;
    const addKey =
      signers === undefined || signers.length === 0
        ? ''
        : `, or, if you trust ${signers.join(', ')}, add its public key to trusted_public_keys in the client's plugin "nix" { config { ... } } block`;
    return failure(
      what,
      `'${path}' from '${cache}' is not signed by a trusted key: it has ${has} (${trusted}), and require_signatures is on; nothing of it was kept`,
      {
        code: 'failed_precondition',
        fix: `${sign}${addKey}`,
      },
    );
  }
  const failedCopy = copies.at(-1);
  if (failedCopy !== undefined && log.errors.length > 0) {
    const [path, cache] = failedCopy;
    if ((await invalidPaths(ctx, [path])).includes(path)) {
      return failure(what, `copying '${path}' from '${cache}' failed: ${log.failureText() ?? 'Nix gave no reason'}`, {
        code: 'failed_precondition',
        fix: `check the cache's copy of that path (nix path-info --store ${cache} ${path}), or push it to the cache again`,
      });
    }
  }
  return undefined;
}

function oneLineText(text: string): string {
  return text.replace(/\s+/g, ' ');
}

/**
 * Deletes what failed copies left in the store: each of `paths` that Nix does not consider
 * valid but that exists on disk (Nix unpacks a NAR into its final place, then checks its hash,
 * and leaves the files when the check fails). `nix-store --delete` refuses valid and locked
 * paths, so nothing in use is touched.
 */
async function removeHalfImported(ctx: Context, paths: readonly string[]): Promise<void> {
  if (paths.length === 0) return;
  const invalid = (await invalidPaths(ctx, paths)).filter((p) => OUTPUT_PATH.test(p));
  const onDisk = await Promise.all(invalid.map(async (p) => (await entryKind(p)) !== undefined));
  const leftovers = invalid.filter((_, i) => onDisk[i]);
  if (leftovers.length === 0) return;
  await runStreaming(ctx.tools.nixStore, ['--delete', ...ctx.tools.extraOptions, ...leftovers], { timeoutMs: QUERY_TIMEOUT_MS });
}

/** The names of the keys that signed `path` in `cache` (`nix path-info --json --store`); undefined when Nix cannot say. */
async function signersIn(ctx: Context, cache: string, path: string): Promise<string[] | undefined> {
  const result = await runStreaming(ctx.tools.nix, ['path-info', '--json', '--extra-experimental-features', 'nix-command', '--store', cache, path], {
    timeoutMs: QUERY_TIMEOUT_MS,
  });
  if (result.exitCode !== 0) return undefined;
  return signaturesOf(result.stdout, path)?.map((sig) => sig.split(':')[0] ?? '');
}

/**
 * The `signatures` of `path` in `nix path-info --json` output: an array of infos (Nix up to
 * 2.18, Lix) or an object keyed by path (Nix 2.19 and later). Undefined when absent.
 */
export function signaturesOf(stdout: string, path: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const info: unknown = Array.isArray(parsed)
    ? parsed.find((i) => (i as { path?: unknown })?.path === path)
    : typeof parsed === 'object' && parsed !== null
      ? (parsed as Record<string, unknown>)[path]
      : undefined;
  if (typeof info !== 'object' || info === null || (info as { valid?: unknown }).valid === false) return undefined;
  const sigs = (info as { signatures?: unknown }).signatures;
  if (sigs === undefined) return [];
  return Array.isArray(sigs) && sigs.every((s) => typeof s === 'string') ? sigs : undefined;
}

/**
 * The NAR hash of a valid store path as SRI (`sha256-<base64>`, as `nix path-info --json`
 * reports `narHash`): `nix-store --query --hash`, the hash Nix recorded when the path became
 * valid (checked then against the NAR it imported or built). Throws a `failed_precondition`
 * DriverError when Nix cannot tell (the path is not valid).
 */
export async function narHashOf(tools: NixTools, path: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  const result = await runStreaming(tools.nixStore, ['--query', '--hash', ...tools.extraOptions, path], {
    timeoutMs: QUERY_TIMEOUT_MS,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const sri = result.exitCode === 0 ? toSriSha256(result.stdout) : undefined;
  if (sri === undefined) {
    const log = new NixLogCollector();
    for (const l of result.stderrTail) log.add(l);
    throw failure(`read the NAR hash of ${quote(path)}`, log.failureText() ?? `nix-store --query --hash printed ${quote(result.stdout.trim().slice(0, 200))}`, {
      code: 'failed_precondition',
      fix: `check the path on the client (nix-store --verify-path ${path})`,
    });
  }
  return sri;
}

function realiseWhat(paths: readonly string[], storePath: string | undefined): string {
  const first = paths[0] ?? '';
  return first === storePath ? `realise store path ${quote(first)}` : `realise package ${quote(first)}`;
}

async function pathFailure(ctx: Context, paths: readonly string[], storePath: string | undefined, text: string): Promise<DriverError> {
  if (/is not in the Nix store|is not a store path|not in the store/.test(text)) {
    return failure(realiseWhat(paths, storePath), text, { code: 'invalid_argument', fix: 'give a path inside the Nix store (/nix/store/…)' });
  }
  const invalid = await invalidPaths(ctx, paths);
  if (invalid.length > 0) {
    const first = invalid[0] ?? '';
    const cause =
      invalid.length === 1
        ? `path '${first}' is not valid and no configured substituter has it`
        : `paths ${invalid.map((p) => `'${p}'`).join(', ')} are not valid and no configured substituter has them`;
    return failure(realiseWhat([first], storePath), `${cause} (nix: ${text})`, {
      code: 'failed_precondition',
      fix: 'build it on the client, copy it there (nix copy), or configure a substituter that has it',
    });
  }
  const drv = failedDerivation(text);
  return failure(realiseWhat(paths, storePath), text, {
    code: 'failed_precondition',
    ...(drv === undefined ? {} : { fix: `fix the build of ${drv} (its whole log: nix-store --read-log ${drv})` }),
  });
}

/** Which of `paths` are not valid store paths; [] when Nix cannot say. */
async function invalidPaths(ctx: Context, paths: readonly string[]): Promise<string[]> {
  return (await query(ctx, ['--check-validity', '--print-invalid', ...paths])) ?? [];
}

/** Runs a quick nix-store query; its stdout lines, or undefined when it fails. */
async function query(ctx: Context, args: readonly string[]): Promise<string[] | undefined> {
  const result = await runStreaming(ctx.tools.nixStore, [...args, ...ctx.tools.extraOptions], {
    timeoutMs: QUERY_TIMEOUT_MS,
    ...(ctx.options.signal === undefined ? {} : { signal: ctx.options.signal }),
  });
  return result.exitCode === 0 ? result.stdout.split('\n').filter((l) => l !== '') : undefined;
}

/**
 * The closure of `paths` when each is a valid store path (`/nix/store/<name>`, not a `.drv`),
 * else undefined. The no-op case of a store path request: one `nix-store --query` (~20 ms)
 * instead of `--realise` and `--query`. A valid path's requisites are always valid.
 */
async function closureIfValid(ctx: Context, paths: readonly string[]): Promise<string[] | undefined> {
  const isStorePath = (p: string) => p.startsWith(`${NIX_STORE_DIR}/`) && /^[^/.][^/]*$/.test(p.slice(NIX_STORE_DIR.length + 1));
  if (!paths.every((p) => isStorePath(p) && !p.endsWith('.drv'))) return undefined;
  const lines = await query(ctx, ['--query', '--requisites', ...paths]);
  return lines === undefined ? undefined : [...new Set(lines)].sort();
}

async function requisites(ctx: Context, paths: readonly string[]): Promise<string[]> {
  const args = ['--query', '--requisites', ...paths];
  const result = await runStreaming(ctx.tools.nixStore, [...args, ...ctx.tools.extraOptions], {
    timeoutMs: QUERY_TIMEOUT_MS,
    ...(ctx.options.signal === undefined ? {} : { signal: ctx.options.signal }),
  });
  if (result.exitCode !== 0) {
    const log = new NixLogCollector();
    for (const l of result.stderrTail) log.add(l);
    const cause = log.failureText() ?? (result.timedOut ? `timed out after ${QUERY_TIMEOUT_MS} ms` : `nix-store exited with code ${result.exitCode}`);
    throw failure(`list the closure of ${paths.map((p) => quote(p)).join(', ')}`, cause, { code: 'failed_precondition' });
  }
  return [...new Set(result.stdout.split('\n').filter((l) => l !== ''))].sort();
}

/**
 * Validation of a task's `config {}` block beyond types (cross-field rules and paths), and
 * resolution of its command inside the realised closure. Every error names the option, the
 * value and the fix; Nomad shows it in `nomad alloc status`. Pure: file-system facts come in
 * through the `CommandLookup` callbacks.
 */
import { decodeTaskConfig, type TaskConfig } from '../config/task-config.js';
import { failure, quote } from '../errors.js';
import { parseFlakeInstallable } from '../nix/flake-ref.js';
import { NIX_STORE_DIR, absolutePathProblem, isWithin } from '../paths.js';
import { FHS_LINK_PATHS, type FhsLink } from '../rootfs/plan.js';

const WHERE = `the task's config { ... } block`;

/** What to realise, once the block is known to be consistent. */
export interface ClosureRequest {
  readonly flake?: string;
  readonly storePath?: string;
  readonly packages: readonly string[];
  /** The task's closure_cache: a binary-cache directory relative to the task dir, `local/…`. */
  readonly closureCache?: string;
}

function invalid(cause: string, fix: string) {
  return failure('validate task config', cause, { code: 'invalid_argument', fix });
}

/**
 * `/nix/store/<hash>-<name>` exactly (a top-level store path, not a `.drv`), else why not.
 * A `.drv` would make the client build the derivation (and evaluate nothing, but run its
 * builder): tasks name outputs, which Nix only substitutes.
 */
export function storePathProblem(path: string): string | undefined {
  const problem = absolutePathProblem(path);
  if (problem !== undefined) return problem;
  if (!isWithin(path, NIX_STORE_DIR) || path === NIX_STORE_DIR) return `is not in ${NIX_STORE_DIR}`;
  const rest = path.slice(NIX_STORE_DIR.length + 1);
  if (rest.includes('/')) return `is inside a store path, not a store path (use ${NIX_STORE_DIR}/${rest.split('/')[0]})`;
  if (!/^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/.test(rest)) return 'is not a store path name (<32-char hash>-<name>)';
  if (rest.endsWith('.drv')) return 'is a derivation (.drv), not an output path: the client would build it';
  return undefined;
}

/** Checks the rules the schema cannot express; returns what to realise. */
export function validateTaskConfig(config: TaskConfig): ClosureRequest {
  const hasFlake = config.flake !== undefined && config.flake !== '';
  const hasStorePath = config.store_path !== undefined && config.store_path !== '';
  if (hasFlake === hasStorePath) {
    throw invalid(
      hasFlake ? 'both flake and store_path are set' : 'neither flake nor store_path is set',
      `set exactly one of flake (a flake installable, e.g. "path:/srv/app#web") or store_path (e.g. "/nix/store/…-web") in ${WHERE}`,
    );
  }
  if (hasFlake) {
    const parsed = parseFlakeInstallable(config.flake ?? '');
    if (!parsed.ok) throw invalid(`flake ${quote(config.flake)} ${parsed.problem.cause}`, parsed.problem.fix);
  }
  if (hasStorePath) {
    const problem = storePathProblem(config.store_path ?? '');
    if (problem !== undefined)
      throw invalid(`store_path ${quote(config.store_path)} ${problem}`, `set store_path to a store path such as "/nix/store/<hash>-<name>" in ${WHERE}`);
  }
  config.packages.forEach((pkg, i) => {
    const problem = storePathProblem(pkg);
    if (problem !== undefined) throw invalid(`packages[${i}] ${quote(pkg)} ${problem}`, `list store paths such as "/nix/store/<hash>-<name>" in packages`);
  });
  if (config.closure_cache !== undefined) {
    const dir = config.closure_cache;
    const fix = `set closure_cache to the artifact's destination below local/, e.g. "local/closure", and give the task a store_path, in ${WHERE}`;
    if (!hasStorePath) throw invalid(`closure_cache ${quote(dir)} is set without store_path (a flake is built, not fetched)`, fix);
    const problem = dir.startsWith('/') ? 'is absolute' : absolutePathProblem(`/${dir}`);
    if (problem !== undefined || !isWithin(`/${dir}`, '/local')) throw invalid(`closure_cache ${quote(dir)} ${problem ?? 'is not below local/'}`, fix);
  }
  if (config.command.split('/').includes('..')) {
    throw invalid(
      `command ${quote(config.command)} contains "..", which would escape the closure`,
      'name the program relative to the main output (e.g. "bin/web"), by absolute store path, or by name on PATH',
    );
  }
  if (config.work_dir !== '') {
    const problem = absolutePathProblem(config.work_dir);
    if (problem !== undefined)
      throw invalid(`work_dir ${quote(config.work_dir)} ${problem}`, 'set work_dir to an absolute path inside the task, e.g. "/local"');
  }
  return {
    ...(hasFlake ? { flake: config.flake ?? '' } : { storePath: config.store_path ?? '' }),
    packages: config.packages,
    ...(config.closure_cache === undefined ? {} : { closureCache: config.closure_cache }),
  };
}

/**
 * A task's `config {}` block (the decoded cty value) → its typed options (the schema,
 * config/task-config.ts) and what to realise (validateTaskConfig). Called once, at the RPC
 * edge (rpc/codec.ts fromProtoStartTask). Throws an `invalid_argument` DriverError naming the
 * option, its value and the fix.
 */
export function decodeTaskSpec(raw: unknown): { readonly config: TaskConfig; readonly closure: ClosureRequest } {
  const config = decodeTaskConfig(raw);
  return { config, closure: validateTaskConfig(config) };
}

/** File-system questions command resolution asks of the host. */
export interface CommandLookup {
  /** True when `path` is an executable file (symlinks followed). */
  readonly isExecutable: (path: string) => boolean;
  /** `path` with every symlink resolved, or undefined when it does not exist. */
  readonly realPath: (path: string) => string | undefined;
  /** Entries of a directory ([] when it does not exist). */
  readonly list: (dir: string) => readonly string[];
}

/** The `bin` directories of the main output and the packages, in PATH order. */
export function binDirs(mainOutput: string, packageOutputs: readonly string[]): string[] {
  return [mainOutput, ...packageOutputs].map((p) => `${p}/bin`);
}

/**
 * The absolute in-task path of the program to run:
 * - empty: the only program in the main output's bin/;
 * - `bin/web` (has a slash, relative): inside the main output;
 * - `/nix/store/…`: as given;
 * - `web` (no slash): the first match in the bin dirs, as PATH lookup would find it.
 * The program (after following symlinks — Nix profiles are symlinks) must lie inside the closure.
 */
export function resolveCommand(
  command: string,
  outputs: { readonly mainOutput: string; readonly packageOutputs: readonly string[]; readonly closure: readonly string[] },
  lookup: CommandLookup,
): string {
  const dirs = binDirs(outputs.mainOutput, outputs.packageOutputs);
  let candidate: string | undefined;
  if (command === '') {
    const programs = lookup.list(`${outputs.mainOutput}/bin`).filter((name) => lookup.isExecutable(`${outputs.mainOutput}/bin/${name}`));
    if (programs.length !== 1) {
      throw invalid(
        `command is empty and ${outputs.mainOutput}/bin has ${programs.length === 0 ? 'no programs' : `${programs.length} programs (${programs.slice(0, 5).join(', ')})`}`,
        'set command to the program to run, e.g. command = "bin/web"',
      );
    }
    candidate = `${outputs.mainOutput}/bin/${programs[0]}`;
  } else if (command.startsWith('/')) {
    candidate = command;
  } else if (command.includes('/')) {
    candidate = `${outputs.mainOutput}/${command}`;
  } else {
    candidate = dirs.map((d) => `${d}/${command}`).find((p) => lookup.isExecutable(p));
    if (candidate === undefined) {
      throw invalid(
        `command ${quote(command)} is not a program in ${dirs.join(' or ')}`,
        'add the package that provides it to packages, or give its path, e.g. "bin/web"',
      );
    }
  }
  const problem = absolutePathProblem(candidate);
  if (problem !== undefined) throw invalid(`command ${quote(command)} ${problem}`, 'name the program relative to the main output, e.g. "bin/web"');
  const inClosure = (p: string) => outputs.closure.some((root) => isWithin(p, root));
  if (!inClosure(candidate)) {
    throw invalid(`command ${quote(command)} is ${candidate}, outside the task's closure`, 'use a program of the main output or of packages');
  }
  const real = lookup.realPath(candidate);
  if (real === undefined || !lookup.isExecutable(candidate)) {
    throw invalid(`command ${quote(command)} (${candidate}) is not an executable file`, `check the program's name in ${outputs.mainOutput}`);
  }
  if (!inClosure(real)) {
    throw invalid(`command ${quote(command)} resolves to ${real}, outside the task's closure`, 'point command at a program inside the closure');
  }
  return candidate;
}

/**
 * The links at /bin/sh and /usr/bin/env (rootfs/plan.ts FHS_LINK_PATHS): each to the first `sh`
 * or `env` on the task's PATH (the main output's bin/, then each package's, as binDirs orders
 * them) that is an executable file whose real path, symlinks followed, lies inside the closure,
 * i.e. the program a shell of the task would run for `sh` or `env`. A closure without one gets
 * no link; a program from the host is never linked. Empty when the task's `fhs_links` is false.
 */
export function fhsLinks(
  enabled: boolean,
  outputs: { readonly mainOutput: string; readonly packageOutputs: readonly string[]; readonly closure: readonly string[] },
  lookup: Pick<CommandLookup, 'isExecutable' | 'realPath'>,
): FhsLink[] {
  if (!enabled) return [];
  const inClosure = (p: string) => outputs.closure.some((root) => isWithin(p, root));
  const dirs = binDirs(outputs.mainOutput, outputs.packageOutputs);
  return FHS_LINK_PATHS.flatMap((path) => {
    const name = path.slice(path.lastIndexOf('/') + 1);
    const program = dirs
      .map((dir) => `${dir}/${name}`)
      .find((candidate) => {
        const real = lookup.realPath(candidate);
        return inClosure(candidate) && real !== undefined && inClosure(real) && lookup.isExecutable(candidate);
      });
    return program === undefined ? [] : [{ path, linkTarget: program }];
  });
}

/**
 * The task command's environment: PATH of the closure's bin directories, and HOME, USER and
 * LOGNAME of the task user (as Nomad's exec driver sets them since hashicorp/nomad#25859 and
 * #26703), HOME being its home inside the task (rootfs/plan.ts taskHome); then Nomad's
 * variables and the job's `env`, which win over all four.
 */
export function taskEnvironment(
  base: { readonly path: string; readonly userName: string; readonly home: string },
  taskEnv: Readonly<Record<string, string>>,
): Record<string, string> {
  return { PATH: base.path, HOME: base.home, USER: base.userName, LOGNAME: base.userName, ...taskEnv };
}

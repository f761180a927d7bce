/**
 * The host side of a task's `flake`: a `path:`/`git+file:` flake names a directory of the
 * client, which Nix (as root) copies into the world-readable store. It is allowed only below
 * the plugin's `allow_local_flakes`, compared after resolving `..` and symlinks (realpath),
 * never in or around Nomad's allocation directories (tasks' `secrets/`), and Nix is then
 * given the resolved path, so it reads exactly what was checked. Remote flakes pass as they are.
 * The file-system question (realpath) comes in as a callback.
 */
import { dirname } from 'node:path';
import { failure, quote } from '../errors.js';
import { localFlakeProblem, parseFlakeInstallable, renderLocalInstallable, type HostDir } from '../nix/flake-ref.js';

/** `path` with every symlink and `..` resolved, or undefined when it does not exist. */
export type RealPath = (path: string) => Promise<string | undefined>;

export interface LocalFlakeContext {
  /** The plugin's allow_local_flakes. */
  readonly allowLocalFlakes: readonly string[];
  /** The task's allocation dir (TaskConfig.alloc_dir); its parent holds every allocation. */
  readonly allocDir: string;
  readonly realPath: RealPath;
}

/**
 * The installable to give Nix for the task's `flake` (already checked against the grammar by
 * validateTaskConfig): remote ones as written, local ones with their resolved path. Throws an
 * `invalid_argument` DriverError naming flake, the value and the fix when a local flake is not
 * allowed.
 */
export async function checkedInstallable(flake: string, context: LocalFlakeContext): Promise<string> {
  const parsed = parseFlakeInstallable(flake);
  if (!parsed.ok) throw invalid(flake, parsed.problem.cause, parsed.problem.fix);
  const { source, attrPath } = parsed.value;
  if (source.kind === 'remote') return flake;
  const resolve = async (dir: string): Promise<HostDir> => ({ dir, real: (await context.realPath(dir)) ?? dir });
  const real = await context.realPath(source.path);
  const realPaths = [real, ...(source.dir === '' || real === undefined ? [] : [await context.realPath(`${real}/${source.dir}`)])];
  const problem = localFlakeProblem(source, {
    realPaths,
    allowed: await Promise.all(context.allowLocalFlakes.map(resolve)),
    allocRoot: await resolve(dirname(context.allocDir)),
  });
  if (problem !== undefined || real === undefined) throw invalid(flake, problem?.cause ?? 'does not exist on this client', problem?.fix ?? 'check the path');
  return renderLocalInstallable(source, real, attrPath);
}

function invalid(flake: string, cause: string, fix: string) {
  return failure('validate task config', `flake ${quote(flake)} ${cause}`, { code: 'invalid_argument', fix });
}

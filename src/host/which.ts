/** Finds executables the way a shell does: an absolute path as given, else the PATH dirs. */
import { accessSync, constants, readdirSync, realpathSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True when `path` is a regular file (symlinks followed) that we may execute. */
export function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The absolute path of `name`: inside `dir` when given, else the first match on `pathEnv`.
 * Undefined when there is none.
 */
export function findExecutable(name: string, options: { dir?: string; pathEnv?: string }): string | undefined {
  if (options.dir !== undefined && options.dir !== '') {
    const candidate = join(options.dir, name);
    return isExecutable(candidate) ? candidate : undefined;
  }
  for (const dir of (options.pathEnv ?? '').split(delimiter)) {
    if (dir === '' || !dir.startsWith('/')) continue; // relative PATH entries are a hazard for a root daemon
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** A string that changes when the file at `path` is replaced or modified (for caches). */
export function fileIdentity(path: string): string | undefined {
  try {
    const s = statSync(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/** `path` with every symlink resolved, or undefined when it does not exist. */
export function realPathOf(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/** Names in `dir`, sorted; [] when it cannot be read. */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

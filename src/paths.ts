/**
 * Host path rules shared by the config validators and the root plan. Pure: no I/O.
 * A path we act on must be absolute and normalised (no `.`/`..` segments, no `//`, no trailing
 * slash), because every later check ("is it inside the store?", "is it a task dir?") compares
 * strings and a `..` would defeat it.
 */
import { posix } from 'node:path';

/** Why `path` is not an absolute normalised path, or undefined when it is one. */
export function absolutePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (!path.startsWith('/')) return 'is not an absolute path';
  const segments = path.split('/').slice(1);
  if (segments.some((s) => s === '..')) return 'contains a ".." segment';
  if (path !== '/' && posix.normalize(path) !== path) return 'is not normalised (remove "//", "." or a trailing "/")';
  if (path !== '/' && path.endsWith('/')) return 'is not normalised (remove the trailing "/")';
  return undefined;
}

/** True when `path` is `dir` itself or lies below it (both absolute and normalised). */
export function isWithin(path: string, dir: string): boolean {
  if (dir === '/') return path.startsWith('/');
  return path === dir || path.startsWith(`${dir}/`);
}

/** The Nix store directory. Nix allows another one, but every public binary cache uses this. */
export const NIX_STORE_DIR = '/nix/store';

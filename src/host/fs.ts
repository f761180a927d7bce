/**
 * Small file-system primitives for the state the driver keeps on the host (GC roots, store
 * views). Each one is idempotent where that makes sense and reports the one race outcome its
 * callers care about (a rename onto an existing directory) as a value, not an exception.
 */
import { chmod, lstat, mkdir, open, readFile, readdir, realpath, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { failure, quote } from '../errors.js';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** The errno code of a thrown value (`ENOENT`, `EXDEV`, …), or undefined. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Creates `dir` and its parents (`mode` applies to the ones created); existing is fine. With
 * `exact`, an existing `dir` gets `mode` too (the driver's own dirs, whose mode decides what
 * task users may traverse).
 */
export async function ensureDirectory(dir: string, mode = 0o755, options: { readonly exact?: boolean } = {}): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  if (options.exact === true) await chmod(dir, mode);
}

/** Creates `dir`, which must not exist yet (its parent must). */
export async function createDirectory(dir: string, mode = 0o755): Promise<void> {
  await mkdir(dir, { mode });
}

/** Creates a symlink at `path` pointing to `target` (verbatim, not resolved). */
export async function createSymlink(target: string, path: string): Promise<void> {
  await symlink(target, path);
}

/** Writes `text` to `path` (created or truncated) with `mode`. */
export async function writeTextFile(path: string, text: string, mode = 0o644): Promise<void> {
  await writeFile(path, text, { mode });
}

/**
 * Renames `from` to `to`. A directory `to` that exists and is not empty is not replaced: the
 * result is then `target-exists` and `from` is left in place.
 */
export async function renameEntry(from: string, to: string): Promise<'renamed' | 'target-exists'> {
  try {
    await rename(from, to);
    return 'renamed';
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'target-exists';
    throw error;
  }
}

/**
 * Removes `path` and everything below it; missing is fine. Read-only directories (copies of
 * store directories are mode 0555) are made writable first when the plain removal is refused.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (error) {
    const code = errnoCode(error);
    if (code !== 'EACCES' && code !== 'EPERM') throw error;
    await makeDirectoriesWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function makeDirectoriesWritable(path: string): Promise<void> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined || !info.isDirectory()) return;
  await chmod(path, 0o700);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (entry.isDirectory()) await makeDirectoriesWritable(join(path, entry.name));
  }
}

/** Removes the file or symlink at `path`; missing is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
}

/** What kind of entry `path` is (symlinks not followed), or undefined when there is none. */
export async function entryKind(path: string): Promise<'directory' | 'file' | 'symlink' | 'other' | undefined> {
  try {
    const info = await lstat(path);
    if (info.isDirectory()) return 'directory';
    if (info.isFile()) return 'file';
    if (info.isSymbolicLink()) return 'symlink';
    return 'other';
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

/** The entries of `dir` with their kinds (symlinks not followed); [] when `dir` is missing. */
export async function listEntries(dir: string): Promise<{ name: string; kind: 'directory' | 'file' | 'symlink' | 'other' }[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.map((e) => ({
      name: e.name,
      kind: e.isDirectory() ? 'directory' : e.isFile() ? 'file' : e.isSymbolicLink() ? 'symlink' : 'other',
    }));
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw error;
  }
}

/**
 * `path` with symlinks resolved as far as it exists: the real path of its longest existing
 * ancestor joined with the rest. For "is this directory inside the store?" checks on
 * directories that may not exist yet.
 */
export async function resolveExisting(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (error) {
    const code = errnoCode(error);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
    const parent = dirname(path);
    if (parent === path) return path;
    return join(await resolveExisting(parent), basename(path));
  }
}

/** The device number of the file system holding `path` (symlinks followed). */
export async function deviceOf(path: string): Promise<number> {
  return (await stat(path)).dev;
}

/** The parsed JSON in `path`, or undefined when it is missing or not JSON. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Writes `value` as JSON to `path` atomically (temp file + rename), creating the directory. */
export async function writeJsonFileAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value));
}

/** Writes `data` to `path` atomically (temp file + rename, mode 0600), creating the directory. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  // unique per call: two writers of one file in the same millisecond must not share a temp file
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  await writeFile(temp, data, { mode: 0o600 });
  await rename(temp, path);
}

/**
 * The first `bytes` bytes of the file at `path` (fewer when it is shorter): one open, one
 * read, one close, however big the file is. Rejects with the errno error of the open or read.
 */
export async function readHead(path: string, bytes: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** True when every path exists (checked concurrently; symlinks are not followed). */
export async function allPathsExist(paths: readonly string[]): Promise<boolean> {
  const results = await Promise.all(
    paths.map((p) =>
      lstat(p).then(
        () => true,
        () => false,
      ),
    ),
  );
  return results.every(Boolean);
}

/**
 * The first directory on the way to `path` (itself included) that user `uid`/`gid` may not
 * search, with its mode, or undefined when every one is searchable. Supplementary groups are
 * not considered (tasks run without them).
 */
export async function unsearchableAncestor(
  path: string,
  uid: number,
  gid: number,
  /** Directories already found searchable by this uid:gid (`<uid>:<gid>:<dir>`); filled in. */
  known: Set<string> = new Set(),
): Promise<{ dir: string; mode: number } | undefined> {
  if (uid === 0) return undefined;
  const parts = path.split('/').filter((p) => p !== '');
  let dir = '';
  for (const part of ['', ...parts]) {
    dir = part === '' ? '/' : `${dir === '/' ? '' : dir}/${part}`;
    const memo = `${uid}:${gid}:${dir}`;
    if (known.has(memo)) continue;
    const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') throw error;
      throw failure('reach directory', `${quote(path)}: ${quote(dir)} does not exist`, {
        code: 'failed_precondition',
        fix: "create it: Nomad creates the task directories before StartTask, and a volume's source must exist on the client",
      });
    });
    const bit = info.uid === uid ? 0o100 : info.gid === gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return { dir, mode: info.mode & 0o7777 };
    known.add(memo);
  }
  return undefined;
}

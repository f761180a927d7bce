/**
 * GC roots for running tasks: one directory per task, `<gcRootsDir>/<key>/`, holding symlinks
 * `0`, `1`, … to the store paths the task needs. Nix's garbage collector walks
 * /nix/var/nix/gcroots recursively and treats every symlink there that points into the store
 * as a root (checked with `nix-store --gc --print-live`/`--print-dead` on Nix 2.8), so the
 * roots dir must lie below /nix/var/nix/gcroots (e.g. /nix/var/nix/gcroots/nomad-driver-nix).
 *
 * An entry appears atomically: it is built as `<key>.tmp-<random>` and renamed into place. The
 * temporary directory is already under gcroots, so the paths are protected from the moment the
 * first link exists, also while an existing entry is being replaced.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { failure, quote } from '../errors.js';
import { createDirectory, createSymlink, ensureDirectory, listEntries, removeTree, renameEntry, writeTextFile } from '../host/fs.js';
import { absolutePathProblem } from '../paths.js';

const TMP_MARKER = '.tmp-';

/** Why `key` cannot name a GC root entry, or undefined when it can. */
export function gcRootKeyProblem(key: string): string | undefined {
  if (key === '') return 'is empty';
  if (key.includes('/')) return 'contains "/"';
  if (key.includes('\0')) return 'contains a NUL byte';
  if (key === '.' || key.includes('..')) return 'is "." or contains ".."';
  if (key.includes(TMP_MARKER)) return `contains "${TMP_MARKER}" (reserved for entries being written)`;
  return undefined;
}

function checkKey(what: string, key: string): void {
  const problem = gcRootKeyProblem(key);
  if (problem !== undefined) {
    throw failure(what, `the key ${quote(key)} ${problem}`, {
      code: 'invalid_argument',
      fix: 'use a key made of the allocation id and task name, without "/"',
    });
  }
}

/** The owner mark inside an entry (driver/ownership.ts): a regular file, which Nix's GC ignores. */
export const GC_ROOT_OWNER_FILE = 'owner.json';

/**
 * Creates (or replaces) the GC root entry `key` holding `paths` and returns its directory.
 * Each path must be absolute; a symlink protects the store path it points into. `owner` (JSON)
 * is written as `owner.json` into the entry before it appears, so every entry is marked.
 */
export async function addTaskGcRoot(gcRootsDir: string, key: string, paths: readonly string[], owner?: unknown): Promise<string> {
  const what = `add GC root ${quote(key)}`;
  checkKey(what, key);
  for (const path of paths) {
    const problem = absolutePathProblem(path);
    if (problem !== undefined) throw failure(what, `the store path ${quote(path)} ${problem}`, { code: 'invalid_argument' });
  }
  const entry = join(gcRootsDir, key);
  const tmp = join(gcRootsDir, `${key}${TMP_MARKER}${randomBytes(6).toString('hex')}`);
  try {
    await ensureDirectory(gcRootsDir);
    await createDirectory(tmp);
    await Promise.all(paths.map((path, i) => createSymlink(path, join(tmp, String(i)))));
    if (owner !== undefined) await writeTextFile(join(tmp, GC_ROOT_OWNER_FILE), JSON.stringify(owner), 0o644);
    if ((await renameEntry(tmp, entry)) === 'target-exists') {
      // Replace: the new links (in tmp) protect the new paths while the old entry goes.
      await removeTree(entry);
      if ((await renameEntry(tmp, entry)) === 'target-exists') throw new Error(`${entry} reappeared while it was being replaced`);
    }
    return entry;
  } catch (error) {
    await removeTree(tmp).catch(() => undefined);
    throw failure(what, `cannot write ${entry}: ${(error as Error).message}`, {
      code: 'failed_precondition',
      fix: 'check that gc_roots_dir is writable by the plugin (it should lie below /nix/var/nix/gcroots)',
      cause: error,
    });
  }
}

/** Removes the GC root entry `key` (and leftovers of interrupted writes of it); missing is fine. */
export async function removeTaskGcRoot(gcRootsDir: string, key: string): Promise<void> {
  const what = `remove GC root ${quote(key)}`;
  checkKey(what, key);
  try {
    const leftovers = (await listEntries(gcRootsDir)).filter((e) => e.name.startsWith(`${key}${TMP_MARKER}`));
    await Promise.all([join(gcRootsDir, key), ...leftovers.map((e) => join(gcRootsDir, e.name))].map((p) => removeTree(p)));
  } catch (error) {
    throw failure(what, (error as Error).message, { code: 'failed_precondition', cause: error });
  }
}

/** The keys of the GC root entries in `gcRootsDir` (sorted); [] when it does not exist. */
export async function listTaskGcRoots(gcRootsDir: string): Promise<string[]> {
  const entries = await listEntries(gcRootsDir).catch((error: unknown) => {
    throw failure(`list GC roots in ${quote(gcRootsDir)}`, (error as Error).message, { code: 'failed_precondition', cause: error });
  });
  return entries
    .filter((e) => e.kind === 'directory' && gcRootKeyProblem(e.name) === undefined)
    .map((e) => e.name)
    .sort();
}

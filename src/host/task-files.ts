/** File work for a task's host-side state: directories, synthesized files, log FIFOs. */
import { constants, watch } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Creates `dir` (and parents) with `mode` (0755: unprivileged task users can traverse it).
 * With `exact` (the default) an existing directory gets `mode` too.
 */
export async function makeDir(dir: string, mode = 0o755, options: { exact?: boolean } = {}): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  if (options.exact !== false) await chmod(dir, mode);
}

/** Writes each file of `files` into `dir` with mode 0644. */
export async function writeFiles(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  await makeDir(dir, 0o755, { exact: false });
  await Promise.all(Object.entries(files).map(([name, content]) => writeFile(join(dir, name), content, { mode: 0o644 })));
}

/**
 * Opens a log sink Nomad gave us (a FIFO read by logmon, or /dev/null) for writing. Opening a
 * FIFO blocks until its reader is there; this runs on libuv's thread pool, never the event loop.
 */
export async function openForWriting(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOCTTY);
}

/** Creates (truncates) a file for a child's status output and returns the handle. */
export async function createFile(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
}

/**
 * Opens every file of `opens` (each a function returning the opened handle); when any open
 * fails, closes the ones that succeeded before rethrowing the first error, so a failed start
 * leaves no descriptor for the garbage collector to find.
 */
export async function openAll(opens: readonly (() => Promise<FileHandle>)[]): Promise<FileHandle[]> {
  const results = await Promise.allSettled(opens.map((openOne) => openOne()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed === undefined) return results.map((r) => (r as PromiseFulfilledResult<FileHandle>).value);
  await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.close().catch(() => undefined) : undefined)));
  throw failed.reason;
}

export { readFile } from 'node:fs/promises';

/** Change notifications for one file: `next()` resolves at the next change (or error). */
export function watchFile(path: string): { next(): Promise<void>; close(): void } {
  let wake: (() => void) | undefined;
  let pending = false;
  const watcher = watch(path, () => {
    if (wake === undefined) pending = true;
    else wake();
  });
  watcher.on('error', () => wake?.());
  return {
    next: () =>
      new Promise<void>((resolve) => {
        if (pending) {
          pending = false;
          resolve();
          return;
        }
        wake = () => {
          wake = undefined;
          resolve();
        };
      }),
    close: () => watcher.close(),
  };
}

/**
 * A directory under `root` holding exactly `files` (mode 0644), shared by every caller with
 * the same content: named by the content's hash, written once (temp dir + rename), reused
 * after. Returns its key (the directory name).
 */
export async function ensureSharedFiles(root: string, files: Readonly<Record<string, string>>): Promise<{ dir: string; key: string }> {
  const entries = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));
  const key = createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 32);
  const dir = join(root, key);
  if (await stat(dir).then(() => true, () => false)) return { dir, key };
  const temp = join(root, `.tmp-${key}-${randomBytes(6).toString('hex')}`);
  await writeFiles(temp, files);
  try {
    await rename(temp, dir);
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error; // else another task wrote it first
  }
  return { dir, key };
}

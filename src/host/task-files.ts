/** File work for a task's host-side state: directories, synthesized files, log FIFOs. */
import { constants, watch } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { ensureDirectory } from './fs.js';
import { join } from 'node:path';
import { failure, quote } from '../errors.js';

/** Writes each file of `files` into `dir` with mode 0644. */
export async function writeFiles(dir: string, files: Readonly<Record<string, string>>): Promise<void> {
  await ensureDirectory(dir, 0o755);
  await Promise.all(Object.entries(files).map(([name, content]) => writeFile(join(dir, name), content, { mode: 0o644 })));
}

/**
 * Opens a log sink Nomad gave us (a FIFO read by logmon, or /dev/null) for writing. Opening a
 * FIFO blocks until its reader is there; this runs on libuv's thread pool, never the event loop.
 */
export async function openForWriting(path: string): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOCTTY);
}

/**
 * Openers of Nomad's two log sinks for a task (openForWriting), for openAll: a sink that cannot
 * be opened is a `failed_precondition` DriverError naming its field.
 */
export function logSinkOpeners(stdoutPath: string, stderrPath: string): [() => Promise<FileHandle>, () => Promise<FileHandle>] {
  const opener = (field: string, path: string) => () =>
    openForWriting(path).catch((error: NodeJS.ErrnoException) => {
      throw failure("open the task's log", `${field} ${quote(path)}: ${error.code ?? error.message}`, {
        code: 'failed_precondition',
        fix: "Nomad creates the task's log FIFOs before StartTask: check the client's alloc dir and log (logmon), then restart the allocation",
        cause: error,
      });
    });
  return [opener('stdout_path', stdoutPath), opener('stderr_path', stderrPath)];
}

/**
 * Gives an opened log FIFO to `uid` (its group stays), so a task running as that user can open
 * it again by name (/dev/stdout, /proc/self/fd/1): reopening a descriptor checks the file's own
 * mode, and Nomad's FIFOs are root's, 0600. runc does the same for a container's stdio
 * (libcontainer fixStdioPermissions). Anything but a FIFO (/dev/null, a file) is left alone,
 * and so is a FIFO when chown fails: the task still writes through its inherited descriptors.
 * Returns whether the FIFO is now the user's.
 */
export async function giveFifoTo(handle: FileHandle, uid: number): Promise<boolean> {
  try {
    const info = await handle.stat();
    if (!info.isFIFO()) return false;
    if (info.uid !== uid) await handle.chown(uid, info.gid);
    return true;
  } catch {
    return false;
  }
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

/** The key (directory name) ensureSharedFiles gives `files`: 32 hex digits of sha256 over the sorted entries. */
export function sharedFilesKey(files: Readonly<Record<string, string>>): string {
  const entries = Object.entries(files).sort(([a], [b]) => a.localeCompare(b));
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 32);
}

/**
 * A directory under `root` holding exactly `files` (mode 0644), shared by every caller with
 * the same content: named by the content's hash, written once (temp dir + rename), reused
 * after. Returns its key (the directory name).
 */
export async function ensureSharedFiles(root: string, files: Readonly<Record<string, string>>): Promise<{ dir: string; key: string }> {
  const key = sharedFilesKey(files);
  const dir = join(root, key);
  if (
    await stat(dir).then(
      () => true,
      () => false,
    )
  )
    return { dir, key };
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

/**
 * Copies directory trees by hardlinking: directories are recreated (same mode and times),
 * symlinks recreated (same target), regular files hardlinked. Used to build a store "view", a
 * directory holding exactly a closure's store paths that costs no data and one bind mount.
 *
 * link(2) needs source and target on the same *mount*, not just the same file system. NixOS
 * bind-mounts /nix/store read-only onto itself, so linking from it into /nix/var fails with
 * EXDEV although both are on one file system. Then the copy is redone with `cp -l` inside a
 * private mount namespace (`unshare --mount --propagation private`) where the self-bind is
 * lazily unmounted first; the host's mounts are never touched.
 */
import { chmod, link, lstat, mkdir, readdir, readlink, symlink, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { failure } from '../errors.js';
import { runStreaming } from './stream-command.js';
import { createDirectory, errnoCode, removeTree } from './fs.js';

/** The link(2) the copy uses; tests inject one that fails. */
export type LinkFunction = (existingPath: string, newPath: string) => Promise<void>;

export interface HardlinkOptions {
  readonly link?: LinkFunction;
  /** How many source trees are copied at once (default 16). */
  readonly concurrency?: number;
}

/** True when `error` is link(2)'s "Invalid cross-device link". */
export function isCrossDeviceError(error: unknown): boolean {
  return errnoCode(error) === 'EXDEV';
}

/**
 * Recreates each of `sources` (absolute paths) as `<targetDir>/<basename>`. `targetDir` must
 * exist. Returns how many entries were created. On an error, waits for the work under way to
 * stop and rethrows the first error (the caller removes the partial copy).
 */
export async function hardlinkTrees(sources: readonly string[], targetDir: string, options: HardlinkOptions = {}): Promise<number> {
  const linkFile = options.link ?? link;
  const queue = [...sources];
  let entries = 0;
  let firstError: unknown;
  let failed = false;

  const copy = async (source: string, target: string): Promise<void> => {
    if (failed) return;
    const info = await lstat(source);
    if (info.isDirectory()) {
      await mkdir(target, { mode: 0o700 });
      entries += 1;
      for (const entry of await readdir(source, { withFileTypes: true })) {
        if (failed) return;
        const from = join(source, entry.name);
        const to = join(target, entry.name);
        if (entry.isFile()) {
          await linkFile(from, to);
          entries += 1;
        } else if (entry.isSymbolicLink()) {
          await symlink(await readlink(from), to);
          entries += 1;
        } else {
          await copy(from, to);
        }
      }
      await chmod(target, info.mode & 0o7777);
      await utimes(target, info.atime, info.mtime);
    } else if (info.isFile()) {
      await linkFile(source, target);
      entries += 1;
    } else if (info.isSymbolicLink()) {
      await symlink(await readlink(source), target);
      entries += 1;
    } else {
      throw new Error(`${source} is neither a directory, a regular file nor a symlink`);
    }
  };

  const worker = async (): Promise<void> => {
    for (let source = queue.shift(); source !== undefined && !failed; source = queue.shift()) {
      try {
        await copy(source, join(targetDir, basename(source)));
      } catch (error) {
        if (!failed) firstError = error;
        failed = true;
      }
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 16, sources.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failed) throw firstError;
  return entries;
}

/**
 * The fallback: `cp -R -P -l` of `sources` into `targetDir` inside a private mount namespace
 * in which `storeDir`'s own bind mount is lazily unmounted first. Needs root (CAP_SYS_ADMIN)
 * and util-linux `unshare`. Paths go to sh as arguments (never into the script), in batches
 * that keep each command line short.
 */
export async function hardlinkTreesInPrivateNamespace(storeDir: string, sources: readonly string[], targetDir: string): Promise<void> {
  const script = 'store=$1; target=$2; shift 2; umount -l "$store" 2>/dev/null || true; exec cp -R -P -l --preserve=mode,timestamps -t "$target" -- "$@"';
  for (const batch of batches(sources, 64 * 1024)) {
    const result = await runStreaming('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', storeDir, targetDir, ...batch], {
      timeoutMs: 600_000,
    });
    if (result.exitCode !== 0) {
      const how = result.timedOut ? 'timed out' : result.exitCode === null ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
      const stderr = result.stderrTail.slice(-5).join(' | ');
      throw new Error(`unshare … cp -l ${how}${stderr === '' ? '' : `: ${stderr}`}`);
    }
  }
}

/** Splits `items` into runs whose total length stays under `maxChars` (at least one item each). */
export function batches(items: readonly string[], maxChars: number): string[][] {
  const result: string[][] = [];
  let current: string[] = [];
  let size = 0;
  for (const item of items) {
    if (current.length > 0 && size + item.length + 1 > maxChars) {
      result.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += item.length + 1;
  }
  if (current.length > 0) result.push(current);
  return result;
}

/** How a hardlink copy was made. */
export type HardlinkMethod = 'link' | 'private-mount-namespace';

/**
 * Fills the empty directory `targetDir` with hardlinked copies of `sources` (paths directly
 * below `storeDir`): with link(2) from this process, or, when that fails with EXDEV, with the
 * private-mount-namespace fallback, and returns which. Throws a DriverError when neither works.
 */
export async function hardlinkCopy(storeDir: string, sources: readonly string[], targetDir: string, options: HardlinkOptions = {}): Promise<HardlinkMethod> {
  try {
    await hardlinkTrees(sources, targetDir, options);
    return 'link';
  } catch (error) {
    if (!isCrossDeviceError(error)) {
      throw failure(`hardlink store paths into ${targetDir}`, (error as Error).message, { code: 'failed_precondition', cause: error });
    }
  }
  await removeTree(targetDir);
  await createDirectory(targetDir);
  try {
    await hardlinkTreesInPrivateNamespace(storeDir, sources, targetDir);
  } catch (error) {
    throw failure(
      `hardlink store paths into ${targetDir}`,
      `link(2) from ${storeDir} fails with EXDEV (a separate mount), and so does cp -l in a private mount namespace without the store's self-bind: ${(error as Error).message}`,
      {
        code: 'failed_precondition',
        fix: `put the plugin's state_dir on the same file system and mount as ${storeDir} (e.g. below /nix/var)`,
        cause: error,
      },
    );
  }
  return 'private-mount-namespace';
}

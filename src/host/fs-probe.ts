/**
 * Cheap checks of directories, files and sockets for the fingerprint (no writes: access(2)
 * answers "could I write", and a connect that is closed at once answers "is a daemon there").
 */
import { accessSync, constants, lstatSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';

/** What a directory Nix needs looks like: absent (with whether Nix could create it), or there. */
export type DirState =
  | { readonly kind: 'missing'; readonly creatable: boolean }
  | { readonly kind: 'dir'; readonly writable: boolean; readonly error?: string }
  | { readonly kind: 'not-dir' };

export type FileState =
  | { readonly kind: 'missing' }
  | { readonly kind: 'file'; readonly writable: boolean; readonly error?: string }
  | { readonly kind: 'not-file' };

const code = (error: unknown) => (error as NodeJS.ErrnoException).code ?? String(error);

function writable(path: string): { writable: boolean; error?: string } {
  try {
    accessSync(path, constants.W_OK);
    return { writable: true };
  } catch (error) {
    return { writable: false, error: code(error) };
  }
}

/** A directory (symlinks followed) and whether we may write in it; or absent, and whether its nearest existing ancestor is a writable directory. */
export function dirState(path: string): DirState {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    let parent = dirname(path);
    for (;;) {
      try {
        const s = statSync(parent);
        return { kind: 'missing', creatable: s.isDirectory() && writable(parent).writable };
      } catch {
        if (parent === dirname(parent)) return { kind: 'missing', creatable: false };
        parent = dirname(parent);
      }
    }
  }
  return isDir ? { kind: 'dir', ...writable(path) } : { kind: 'not-dir' };
}

/** A regular file (symlinks followed) and whether we may write it, another kind of entry, or absent. */
export function fileState(path: string): FileState {
  try {
    lstatSync(path);
  } catch {
    return { kind: 'missing' };
  }
  try {
    return statSync(path).isFile() ? { kind: 'file', ...writable(path) } : { kind: 'not-file' };
  } catch (error) {
    return { kind: 'file', writable: false, error: code(error) };
  }
}

/** access(path, R_OK|W_OK) == 0, as Nix asks of its state directory for `store = auto`. */
export function readWritable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Connects to the unix socket at `path` and closes at once: does something accept? */
export function socketAccepts(path: string, timeoutMs = 1_000): Promise<{ accepts: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const done = (result: { accepts: boolean; error?: string }) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ accepts: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ accepts: true }));
    socket.once('error', (error) => done({ accepts: false, error: code(error) }));
  });
}

/** Finds executables the way a shell does: an absolute path as given, else the PATH dirs. */
import { accessSync, closeSync, constants, lstatSync, openSync, readSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
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

/**
 * The ELF interpreter (dynamic loader) an executable names, e.g. /lib64/ld-linux-x86-64.so.2;
 * undefined for a static executable, a script or an unreadable file.
 */
export function elfInterpreter(path: string): string | undefined {
  let data: Buffer;
  try {
    const fd = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(64 * 1024);
      data = buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = data[4] === 2;
  const little = data[5] === 1;
  const u16 = (o: number) => (little ? data.readUInt16LE(o) : data.readUInt16BE(o));
  const u32 = (o: number) => (little ? data.readUInt32LE(o) : data.readUInt32BE(o));
  const word = (o: number) => (is64 ? Number(little ? data.readBigUInt64LE(o) : data.readBigUInt64BE(o)) : u32(o));
  const phoff = word(is64 ? 0x20 : 0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + phentsize > data.length) return undefined;
    if (u32(at) !== 3) continue; // PT_INTERP
    const offset = word(at + (is64 ? 0x08 : 0x04));
    const size = word(at + (is64 ? 0x20 : 0x10));
    if (offset + size > data.length) return undefined;
    return data
      .subarray(offset, offset + size)
      .toString('latin1')
      .replace(/\0+$/, '');
  }
  return undefined;
}

export type ExecutableKind = 'executable' | 'not-executable' | 'missing';

/** Whether `path` (symlinks followed) is a file we may execute, another kind of entry, or absent. */
export function executableKind(path: string): ExecutableKind {
  try {
    statSync(path);
  } catch {
    return 'missing';
  }
  return isExecutable(path) ? 'executable' : 'not-executable';
}

/** Most symlinks followed in one path, as the kernel allows (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/**
 * `taskPath` resolved inside the directory tree `root` (e.g. /proc/<pid>/root, a task's root
 * seen from the host) as the kernel resolves it for a process chrooted there: an absolute
 * symlink starts again at `root`, `..` never climbs above it. Returns the host path of the
 * result (no symlink left in it), or undefined when a component is missing or the links loop.
 * A plain stat of `${root}${taskPath}` would follow an absolute link in the task (`x -> /`)
 * to the HOST's root. The tree may change while it is walked: use the result for answers
 * about the task (is there a program here), never to open or run a host file.
 */
export function resolveInRoot(rootDir: string, taskPath: string): string | undefined {
  const root = rootDir.replace(/\/+$/, '');
  const split = (path: string) => path.split('/').filter((part) => part !== '' && part !== '.');
  let pending = split(taskPath);
  let resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending as [string, ...string[]];
    pending = rest;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const hostPath = `${root}/${[...resolved, part].join('/')}`;
    let target: string | undefined;
    try {
      if (!lstatSync(hostPath).isSymbolicLink()) {
        resolved.push(part);
        continue;
      }
      target = readlinkSync(hostPath);
    } catch {
      return undefined;
    }
    if (++links > MAX_SYMLINKS) return undefined;
    if (target.startsWith('/')) resolved = [];
    pending = [...split(target), ...pending];
  }
  return `${root}/${resolved.join('/')}`;
}

/** executableKind of `taskPath` in the tree `root`, its symlinks resolved inside that tree (resolveInRoot). */
export function executableKindInRoot(root: string, taskPath: string): ExecutableKind {
  const hostPath = resolveInRoot(root, taskPath);
  if (hostPath === undefined) return 'missing';
  try {
    const stat = lstatSync(hostPath);
    if (stat.isSymbolicLink()) return 'not-executable'; // replaced while we looked
    if (!stat.isFile()) return 'not-executable';
    accessSync(hostPath, constants.X_OK);
    return 'executable';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'not-executable';
  }
}

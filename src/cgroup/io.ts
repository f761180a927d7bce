/**
 * The five file operations the cgroup module does on cgroupfs, behind an interface so tests
 * can run the same code on a fake tree in a temp dir (with a tiny fake "kernel" that creates
 * control files on mkdir). The real implementation is plain node:fs, with the two cgroupfs
 * rules that matter: a value goes out in one write(2) to an existing file (no O_CREAT: a
 * missing control file means a controller is not enabled, and must fail), and directories
 * are removed with rmdir(2) only, never recursively.
 */
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, rmdir, stat } from 'node:fs/promises';
import { errnoCode } from '../host/fs.js';

/**
 * A control file opened once and read again from offset 0 at each `read()`: a counter the
 * kernel updates (cpu.stat, memory.current, …). The read is one synchronous pread(2)
 * (more only for a text over 64 KiB): cgroupfs files are generated in memory by the kernel and never wait on a
 * disk, so this costs microseconds and saves the open/fstat/read/close round trips through
 * the thread pool that a readFile makes (issue 16: stats of 50 tasks at 1 s).
 */
export interface CgroupFileReader {
  /** The file's whole text now. Throws with the errno when the cgroup is gone (ENODEV). */
  read(): string;
  /** Closes the descriptor; idempotent. */
  close(): void;
}

export interface CgroupIo {
  /** Creates `dir` (its parent must exist); false when it already existed. */
  mkdir(dir: string): Promise<boolean>;
  /** Removes the empty cgroup `dir`; throws with the errno (EBUSY while it has processes). */
  rmdir(dir: string): Promise<void>;
  /** The file's text, or undefined when it does not exist. */
  read(file: string): Promise<string | undefined>;
  /** Opens `file` for repeated reads, or undefined when it does not exist. */
  openReader(file: string): Promise<CgroupFileReader | undefined>;
  /** Writes `value` to an existing file in one write. */
  write(file: string, value: string): Promise<void>;
  /**
   * The same, synchronously: open, one write(2), close on the calling thread. For the pid a
   * launch puts into the task cgroup while its sandbox waits (TaskCgroup.addProcess): three
   * thread-pool round trips per hierarchy cost milliseconds on a loaded host, the calls
   * themselves microseconds (issue 16).
   */
  writeNow(file: string, value: string): void;
  exists(path: string): Promise<boolean>;
}

export const nodeCgroupIo: CgroupIo = {
  async mkdir(dir) {
    try {
      await mkdir(dir, { mode: 0o755 });
      return true;
    } catch (error) {
      if (errnoCode(error) === 'EEXIST') return false;
      throw error;
    }
  },
  async rmdir(dir) {
    await rmdir(dir);
  },
  async read(file) {
    try {
      return await readFile(file, 'utf8');
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  },
  async openReader(file) {
    try {
      const handle = await open(file, constants.O_RDONLY);
      return descriptorReader(handle.fd, () => void handle.close());
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  },
  async write(file, value) {
    // O_TRUNC without O_CREAT, like `echo value > file` on an existing file
    const handle = await open(file, constants.O_WRONLY | constants.O_TRUNC);
    try {
      await handle.write(value);
    } finally {
      await handle.close();
    }
  },
  writeNow(file, value) {
    const fd = openSync(file, constants.O_WRONLY | constants.O_TRUNC);
    try {
      writeSync(fd, value);
    } finally {
      closeSync(fd);
    }
  },
  async exists(path) {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
};

/** One buffer for every reader: reads are synchronous, so they never overlap. */
let readBuffer = Buffer.allocUnsafe(64 * 1024);

/** A CgroupFileReader over the open descriptor `fd`; `release` closes it. */
export function descriptorReader(fd: number, release: () => void = () => closeSync(fd)): CgroupFileReader {
  let closed = false;
  return {
    read() {
      let length = 0;
      for (;;) {
        const n = readSync(fd, readBuffer, length, readBuffer.length - length, length);
        length += n;
        // a short read is the end: cgroupfs (seq_file, kernfs) fills the buffer while it has text
        if (length < readBuffer.length) break;
        const bigger = Buffer.allocUnsafe(readBuffer.length * 2);
        readBuffer.copy(bigger, 0, 0, length);
        readBuffer = bigger;
      }
      return readBuffer.toString('utf8', 0, length);
    },
    close() {
      if (closed) return;
      closed = true;
      release();
    },
  };
}

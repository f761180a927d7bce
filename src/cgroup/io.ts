/**
 * The five file operations the cgroup module does on cgroupfs, behind an interface so tests
 * can run the same code on a fake tree in a temp dir (with a tiny fake "kernel" that creates
 * control files on mkdir). The real implementation is plain node:fs, with the two cgroupfs
 * rules that matter: a value goes out in one write(2) to an existing file (no O_CREAT: a
 * missing control file means a controller is not enabled, and must fail), and directories
 * are removed with rmdir(2) only, never recursively.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, rmdir, stat } from 'node:fs/promises';
import { errnoCode } from '../host/fs.js';

export interface CgroupIo {
  /** Creates `dir` (its parent must exist); false when it already existed. */
  mkdir(dir: string): Promise<boolean>;
  /** Removes the empty cgroup `dir`; throws with the errno (EBUSY while it has processes). */
  rmdir(dir: string): Promise<void>;
  /** The file's text, or undefined when it does not exist. */
  read(file: string): Promise<string | undefined>;
  /** Writes `value` to an existing file in one write. */
  write(file: string, value: string): Promise<void>;
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
  async write(file, value) {
    // O_TRUNC without O_CREAT, like `echo value > file` on an existing file
    const handle = await open(file, constants.O_WRONLY | constants.O_TRUNC);
    try {
      await handle.write(value);
    } finally {
      await handle.close();
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

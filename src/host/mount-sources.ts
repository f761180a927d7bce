/**
 * What the host says about the paths Nomad asks the driver to mount into a task: the real path
 * of a volume and whether it is a directory or a file, and the type and numbers of a device
 * node (runc's device cgroup needs them; stat(2) is the only source).
 */
import { realpath, stat } from 'node:fs/promises';
import { errnoCode } from './fs.js';

export interface VolumeSource {
  /** The path with every symlink resolved. */
  readonly realPath: string;
  readonly kind: 'directory' | 'file' | 'other';
}

/** The volume at `path`, or undefined when nothing is there. */
export async function inspectVolumeSource(path: string): Promise<VolumeSource | undefined> {
  try {
    const realPath = await realpath(path);
    const info = await stat(realPath);
    return { realPath, kind: info.isDirectory() ? 'directory' : info.isFile() ? 'file' : 'other' };
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

export interface DeviceSource {
  readonly realPath: string;
  /** 'c' or 'b' for a device node, undefined for anything else. */
  readonly deviceType: 'c' | 'b' | undefined;
  readonly major: number;
  readonly minor: number;
}

/** glibc's gnu_dev_major / gnu_dev_minor on a 64-bit dev_t. */
export function splitDeviceNumber(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major & 0xffffffffn), minor: Number(minor & 0xffffffffn) };
}

/** The device node at `path` (symlinks followed, as /dev/disk/by-id links are), or undefined when nothing is there. */
export async function inspectDeviceNode(path: string): Promise<DeviceSource | undefined> {
  try {
    const realPath = await realpath(path);
    const info = await stat(realPath, { bigint: true });
    const deviceType = info.isCharacterDevice() ? 'c' : info.isBlockDevice() ? 'b' : undefined;
    return { realPath, deviceType, ...splitDeviceNumber(info.rdev) };
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined;
    throw error;
  }
}

/**
 * Nomad's mounts and devices for a task (TaskConfig.mounts and .devices) → the root plan's
 * extra mounts and device binds. The rules that need the host (does the path exist, is it a
 * device node, what are its numbers) are answered through `MountLookup`; the plan
 * (rootfs/plan.ts) then validates every path once more, purely. Pure: no I/O of its own.
 *
 * Nomad sends a group `volume "x" { type = "host" }` named by the task's `volume_mount` as one
 * mount whose host path is the client's `host_volume` path (taskrunner/volume_hook.go,
 * hostVolumeMountConfigurations); CSI volumes and device plugins' mounts arrive the same way.
 */
import { posix } from 'node:path';
import type { PluginConfig } from '../config/plugin-config.js';
import { failure, quote } from '../errors.js';
import type { DeviceSource, VolumeSource } from '../host/mount-sources.js';
import type { DeviceBind, ExtraMount } from '../rootfs/plan.js';
import type { DeviceRequest, VolumeMount } from './task.js';

export interface MountLookup {
  readonly volume: (path: string) => Promise<VolumeSource | undefined>;
  readonly device: (path: string) => Promise<DeviceSource | undefined>;
}

const { dirname } = posix;

const PLUGIN_BLOCK = `the client's plugin "nix" { config { ... } } block`;

/**
 * Propagation modes (Nomad's `volume_mount { propagation_mode }`) the runtimes honour. Both
 * make the task's mount namespace a slave of the host's (bwrap always; runc's default root
 * propagation), so a volume receives mounts the host makes below it later (`host-to-task`) and
 * never passes the task's mounts to the host. `private` (Nomad's default) is accepted as that.
 * `bidirectional` would let a task mount onto the host and is refused.
 */
const PROPAGATION_MODES = ['', 'private', 'host-to-task'];

function volumeError(mount: VolumeMount, cause: string, fix: string, code: 'invalid_argument' | 'failed_precondition' = 'invalid_argument'): Error {
  return failure('mount volume', `the volume_mount at ${quote(mount.taskPath)} (host path ${quote(mount.hostPath)}) ${cause}`, { code, fix });
}

function deviceError(device: DeviceRequest, cause: string, fix: string): Error {
  return failure('bind device', `device ${quote(device.hostPath)} for ${quote(device.taskPath)} ${cause}`, { code: 'failed_precondition', fix });
}

/** Nomad's cgroup_permissions in "rwm" order; empty grants all three, as Docker reads it. */
export function devicePermissions(permissions: string): string {
  if (permissions === '') return 'rwm';
  if (!/^[rwm]+$/.test(permissions)) return permissions; // the plan names it
  return ['r', 'w', 'm'].filter((p) => permissions.includes(p)).join('');
}

/**
 * The checks that need nothing but the request and the plugin config; StartTask runs them
 * first, so a refused mount leaves nothing behind.
 */
export function checkMountRequests(mounts: readonly VolumeMount[], config: PluginConfig): void {
  const first = mounts[0];
  if (first !== undefined && !config.allow_volumes) {
    throw volumeError(
      first,
      'is not allowed: the plugin config sets allow_volumes = false',
      `remove the task's volume_mount, or set allow_volumes = true in ${PLUGIN_BLOCK}`,
    );
  }
  for (const mount of mounts) {
    if (!PROPAGATION_MODES.includes(mount.propagationMode)) {
      throw volumeError(
        mount,
        `has propagation_mode ${quote(mount.propagationMode)}, which this driver does not support (a task must not mount onto the host)`,
        'set propagation_mode = "private" (the default) or "host-to-task" in the task\'s volume_mount block',
      );
    }
  }
}

export interface ResolvedMounts {
  readonly extraMounts: readonly ExtraMount[];
  readonly devices: readonly DeviceBind[];
  /**
   * Per volume, the directory a runtime that binds as the task user (bwrap) must be able to
   * search: the volume itself, or the directory holding a file volume.
   */
  readonly reach: readonly { readonly dir: string; readonly source: string; readonly taskPath: string }[];
}

/**
 * The plan inputs for the task's mounts and devices: real host paths (symlinks resolved, so
 * the plan checks the path that is bound), read-only flags, device types and numbers.
 */
export async function resolveMounts(
  request: { readonly mounts: readonly VolumeMount[]; readonly devices: readonly DeviceRequest[] },
  lookup: MountLookup,
): Promise<ResolvedMounts> {
  const extraMounts: ExtraMount[] = [];
  const reach: ResolvedMounts['reach'][number][] = [];
  for (const mount of request.mounts) {
    const source = await lookup.volume(mount.hostPath);
    if (source === undefined) {
      throw volumeError(mount, 'does not exist on this client', "create the directory, or fix the path of the client's host_volume", 'failed_precondition');
    }
    if (source.kind === 'other') {
      throw volumeError(mount, `is neither a directory nor a file (${source.realPath})`, 'point the host volume at a directory', 'failed_precondition');
    }
    extraMounts.push({ source: source.realPath, target: mount.taskPath, readOnly: mount.readOnly });
    reach.push({ dir: source.kind === 'directory' ? source.realPath : dirname(source.realPath), source: source.realPath, taskPath: mount.taskPath });
  }
  const devices: DeviceBind[] = [];
  for (const device of request.devices) {
    const node = await lookup.device(device.hostPath);
    if (node === undefined) throw deviceError(device, 'does not exist on this client', 'check the device plugin that reserved it');
    if (node.deviceType === undefined) throw deviceError(device, `is not a character or block device (${node.realPath})`, 'reserve a device node below /dev');
    devices.push({
      source: node.realPath,
      target: device.taskPath,
      deviceType: node.deviceType,
      major: node.major,
      minor: node.minor,
      permissions: devicePermissions(device.permissions),
    });
  }
  return { extraMounts, devices, reach };
}

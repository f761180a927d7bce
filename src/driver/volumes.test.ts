import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultPluginConfig } from '../config/plugin-config.js';
import type { DeviceSource, VolumeSource } from '../host/mount-sources.js';
import { checkMountRequests, devicePermissions, resolveMounts, type MountLookup } from './volumes.js';
import type { VolumeMount } from './task.js';

const CONFIG = defaultPluginConfig();
const DATA: VolumeMount = { taskPath: '/data', hostPath: '/srv/data', readOnly: false, propagationMode: 'private' };

const volumes: Record<string, VolumeSource> = {
  '/srv/data': { realPath: '/srv/data', kind: 'directory' },
  '/srv/link': { realPath: '/mnt/disk/data', kind: 'directory' },
  '/srv/config.json': { realPath: '/srv/config.json', kind: 'file' },
  '/run/sock': { realPath: '/run/sock', kind: 'other' },
};
const devices: Record<string, DeviceSource> = {
  '/dev/fuse': { realPath: '/dev/fuse', deviceType: 'c', major: 10, minor: 229 },
  '/dev/disk/by-id/x': { realPath: '/dev/loop0', deviceType: 'b', major: 7, minor: 0 },
  '/dev/shm/file': { realPath: '/dev/shm/file', deviceType: undefined, major: 0, minor: 0 },
};
const LOOKUP: MountLookup = { volume: async (p) => volumes[p], device: async (p) => devices[p] };

describe('checkMountRequests', () => {
  it('accepts the propagation modes both runtimes honour', () => {
    for (const propagationMode of ['', 'private', 'host-to-task']) checkMountRequests([{ ...DATA, propagationMode }], CONFIG);
  });

  it('refuses bidirectional propagation and unknown modes, naming the mount', () => {
    assert.throws(() => checkMountRequests([{ ...DATA, propagationMode: 'bidirectional' }], CONFIG), {
      code: 'invalid_argument',
      message:
        'failed to mount volume: the volume_mount at "/data" (host path "/srv/data") has propagation_mode "bidirectional", which this driver does not support (a task must not mount onto the host); fix: set propagation_mode = "private" (the default) or "host-to-task" in the task\'s volume_mount block',
    });
  });

  it('refuses every mount when allow_volumes is off, naming the option', () => {
    checkMountRequests([], { ...CONFIG, allow_volumes: false });
    assert.throws(() => checkMountRequests([DATA], { ...CONFIG, allow_volumes: false }), {
      code: 'invalid_argument',
      message:
        'failed to mount volume: the volume_mount at "/data" (host path "/srv/data") is not allowed: the plugin config sets allow_volumes = false; fix: remove the task\'s volume_mount, or set allow_volumes = true in the client\'s plugin "nix" { config { ... } } block',
    });
  });
});

describe('resolveMounts', () => {
  it('binds the real host path of each volume, read-only as Nomad says, and says which dir the task user must reach', async () => {
    const resolved = await resolveMounts(
      {
        mounts: [
          DATA,
          { ...DATA, hostPath: '/srv/link', taskPath: '/link', readOnly: true },
          { ...DATA, hostPath: '/srv/config.json', taskPath: '/etc-app/config.json' },
        ],
        devices: [],
      },
      LOOKUP,
    );
    assert.deepEqual(resolved.extraMounts, [
      { source: '/srv/data', target: '/data', readOnly: false },
      { source: '/mnt/disk/data', target: '/link', readOnly: true },
      { source: '/srv/config.json', target: '/etc-app/config.json', readOnly: false },
    ]);
    assert.deepEqual(
      resolved.reach.map((r) => r.dir),
      ['/srv/data', '/mnt/disk/data', '/srv'],
    );
  });

  it('refuses a missing volume or one that is neither a directory nor a file', async () => {
    await assert.rejects(resolveMounts({ mounts: [{ ...DATA, hostPath: '/srv/none' }], devices: [] }, LOOKUP), {
      code: 'failed_precondition',
      message:
        'failed to mount volume: the volume_mount at "/data" (host path "/srv/none") does not exist on this client; fix: create the directory, or fix the path of the client\'s host_volume',
    });
    await assert.rejects(
      resolveMounts({ mounts: [{ ...DATA, hostPath: '/run/sock' }], devices: [] }, LOOKUP),
      /is neither a directory nor a file \(\/run\/sock\)/,
    );
  });

  it('takes device numbers from the host node, follows symlinks, and orders permissions', async () => {
    const resolved = await resolveMounts(
      {
        mounts: [],
        devices: [
          { hostPath: '/dev/fuse', taskPath: '/dev/fuse', permissions: 'wr' },
          { hostPath: '/dev/disk/by-id/x', taskPath: '/dev/disk0', permissions: '' },
        ],
      },
      LOOKUP,
    );
    assert.deepEqual(resolved.devices, [
      { source: '/dev/fuse', target: '/dev/fuse', deviceType: 'c', major: 10, minor: 229, permissions: 'rw' },
      { source: '/dev/loop0', target: '/dev/disk0', deviceType: 'b', major: 7, minor: 0, permissions: 'rwm' },
    ]);
  });

  it('refuses a device that is missing or not a device node', async () => {
    await assert.rejects(resolveMounts({ mounts: [], devices: [{ hostPath: '/dev/nope', taskPath: '/dev/nope', permissions: 'rw' }] }, LOOKUP), {
      code: 'failed_precondition',
      message: 'failed to bind device: device "/dev/nope" for "/dev/nope" does not exist on this client; fix: check the device plugin that reserved it',
    });
    await assert.rejects(resolveMounts({ mounts: [], devices: [{ hostPath: '/dev/shm/file', taskPath: '/dev/x', permissions: 'rw' }] }, LOOKUP), {
      message:
        'failed to bind device: device "/dev/shm/file" for "/dev/x" is not a character or block device (/dev/shm/file); fix: reserve a device node below /dev',
    });
  });

  it('reads Nomad\'s cgroup_permissions like Docker: empty is "rwm"', () => {
    assert.deepEqual(['', 'r', 'mwr', 'rw', 'rx'].map(devicePermissions), ['rwm', 'r', 'rwm', 'rw', 'rx']);
  });
});

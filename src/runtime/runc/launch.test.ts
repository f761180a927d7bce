/**
 * RuncRuntime.launch writes the bundle's config.json before it starts its monitor. The driver
 * owns the task cgroup (driver/task-cgroup.ts): runc is told where the cgroup is and writes no
 * limit there, but the reserved cores of a v1 task whose cpuset cgroup is not at that path.
 * A stand-in shell that exits at once lets the launch fail after the config was written.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { planRoot } from '../../rootfs/plan.js';
import type { CgroupPlacement, LaunchRequest } from '../runtime.js';
import { RuncRuntime } from './runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'runc-launch-test-'));
const shell = join(dir, 'exits-at-once');
writeFileSync(shell, '#!/bin/sh\nexit 1\n');
chmodSync(shell, 0o755);

function request(stateDir: string, cgroup: Partial<CgroupPlacement> = {}): LaunchRequest {
  return {
    key: 'runc-launch-test',
    plan: planRoot({ storeView: '/var/lib/nix-driver/views/v1', allocDir: '/opt/nomad/alloc/a1', taskName: 'web', etcDir: '/var/lib/nix-driver/etc/a1-web' }),
    process: { argv: ['/nix/store/abc-web/bin/web'], env: {}, cwd: '/local', uid: 65534, gid: 65534, hostname: 'web-1', capabilities: [] },
    stateDir,
    stdoutPath: '/dev/null',
    stderrPath: '/dev/null',
    cgroup: { path: '/nomad/a1.web', join: async () => undefined, contains: () => false, ...cgroup },
  };
}

/** linux.resources of the config.json a launch with `cgroup` wrote, once the launch failed. */
async function resourcesOf(cgroup: Partial<CgroupPlacement>): Promise<{ cgroupsPath: unknown; resources: Record<string, unknown> }> {
  const stateDir = mkdtempSync(join(dir, 'bundle-'));
  const runtime = new RuncRuntime({ runcPath: '/usr/sbin/runc', initPath: '/usr/bin/tini-static', runcRoot: join(dir, 'runc-root'), shellPath: shell });
  await assert.rejects(runtime.launch(request(stateDir, cgroup)), {
    message:
      "failed to launch task: runc could not start the container: runc exited without starting it and logged no error; fix: see `nomad alloc logs -stderr` and the plugin log for runc's messages",
  });
  const config = JSON.parse(readFileSync(join(stateDir, 'config.json'), 'utf8')) as { linux: { cgroupsPath: unknown; resources: Record<string, unknown> } };
  return { cgroupsPath: config.linux.cgroupsPath, resources: config.linux.resources };
}

const DENY_ALL_DEVICES = { allow: false, access: 'rwm' };

describe('RuncRuntime.launch and the task cgroup', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives runc the cgroup to join and no limit to write: the driver wrote them', async () => {
    const { cgroupsPath, resources } = await resourcesOf({});
    assert.equal(cgroupsPath, '/nomad/a1.web');
    assert.deepEqual(Object.keys(resources), ['devices']);
    assert.deepEqual((resources.devices as unknown[])[0], DENY_ALL_DEVICES);
  });

  it('gives runc the reserved cores of a v1 task whose cpuset cgroup is elsewhere, for the cpuset directory runc makes', async () => {
    const { resources } = await resourcesOf({ cpusetCpusAtPath: '0-1' });
    assert.deepEqual(resources.cpu, { cpus: '0-1' });
    assert.deepEqual(Object.keys(resources).sort(), ['cpu', 'devices']);
  });
});

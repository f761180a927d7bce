/**
 * The driver owns the task cgroup; what a runtime is given to put the task in it
 * (cgroupPlacement): the path it joins, and the reserved cores only where the runtime's own
 * cpuset directory at that path differs from the driver's (v1, Nomad's reserve partition).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nomadTaskCgroup, taskCgroupLocation } from '../cgroup/placement.js';
import { openTaskCgroup } from '../cgroup/task-cgroup.js';
import { cgroupPlacement, withOomKills } from './task-cgroup.js';

const ALLOC = '8a1b2c3d-0000-4000-8000-000000000001';
const placementOf = (location: Parameters<typeof openTaskCgroup>[0], cpusetCpus?: string) => {
  const {
    join: _join,
    contains: _contains,
    readyJoin: _readyJoin,
    ...rest
  } = cgroupPlacement(openTaskCgroup(location), cpusetCpus === undefined ? {} : { cpusetCpus });
  return rest;
};

describe('cgroupPlacement', () => {
  it("v1, Nomad's reserve partition: the path of the other hierarchies and the reserved cores for a cpuset directory there", () => {
    const location = nomadTaskCgroup({ version: 'v1', allocId: ALLOC, taskName: 'web', cpusetCgroupPath: `/sys/fs/cgroup/cpuset/nomad/reserve/${ALLOC}.web` });
    assert.deepEqual(placementOf(location, '2-3'), { path: `/nomad/${ALLOC}.web`, cpusetCpusAtPath: '2-3' });
  });

  it("v1, Nomad's shared partition, or the driver's own cgroup: the path alone", () => {
    const shared = nomadTaskCgroup({ version: 'v1', allocId: ALLOC, taskName: 'web', cpusetCgroupPath: '/sys/fs/cgroup/cpuset/nomad/share' });
    assert.deepEqual(placementOf(shared), { path: `/nomad/${ALLOC}.web` });
    assert.deepEqual(placementOf(taskCgroupLocation({ version: 'v1', path: 'nomad-driver-nix/k1' }), '0-1'), { path: '/nomad-driver-nix/k1' });
  });

  it('v2: one cgroup, the path alone (the driver wrote cpuset.cpus there)', () => {
    const location = nomadTaskCgroup({
      version: 'v2',
      allocId: ALLOC,
      taskName: 'web',
      cpusetCgroupPath: `/sys/fs/cgroup/nomad.slice/reserve.slice/${ALLOC}.web.scope`,
    });
    assert.deepEqual(placementOf(location, '2-3'), { path: `/nomad.slice/reserve.slice/${ALLOC}.web.scope` });
  });
});

describe('withOomKills', () => {
  it('marks the exit OOM-killed when the cgroup counted more kills than at start, and not otherwise', async () => {
    const counting = (kills: number | undefined) => ({ readOomKills: async () => kills }) as unknown as Parameters<typeof withOomKills>[1];
    const status = { exitCode: 137, signal: 9, oomKilled: false };
    assert.deepEqual(await withOomKills(status, counting(3), 2), { ...status, oomKilled: true });
    assert.deepEqual(await withOomKills(status, counting(2), 2), status);
    assert.deepEqual(await withOomKills(status, counting(undefined), 0), status);
    assert.deepEqual(await withOomKills(status, undefined, 0), status);
  });
});

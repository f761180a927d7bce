import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { detectCgroups } from './detect.js';
import { classifyCgroups, parseMountinfo } from './mountinfo.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/cgroup/${name}`, import.meta.url));

describe('cgroup detection', () => {
  it('parses mountinfo, unescaping octal sequences', () => {
    const entries = parseMountinfo(readFileSync(fixture('mountinfo-hybrid.txt'), 'utf8'));
    assert.ok(entries.some((e) => e.mountPoint === '/tmp/with space'));
  });

  it('classifies a hybrid host (tmpfs at /sys/fs/cgroup, cgroup2 at unified/) as v1, as Nomad does', () => {
    const layout = classifyCgroups(parseMountinfo(readFileSync(fixture('mountinfo-hybrid.txt'), 'utf8')));
    assert.deepEqual(layout, { mode: 'v1', root: '/sys/fs/cgroup', controllers: ['cpu', 'cpuacct', 'cpuset', 'freezer', 'memory', 'pids'] });
  });

  it('reads the v2 controllers from a (fake) unified cgroupfs tree', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fake-cgroupfs-'));
    try {
      const mountinfo = join(root, 'mountinfo');
      writeFileSync(mountinfo, readFileSync(fixture('mountinfo-unified.txt'), 'utf8').replaceAll('/sys/fs/cgroup', root));
      writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
      assert.deepEqual(await detectCgroups({ root, mountinfoPath: mountinfo }), {
        version: 'v2',
        controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'],
        problem: undefined,
      });
      writeFileSync(join(root, 'cgroup.controllers'), 'cpu io memory\n');
      const partial = await detectCgroups({ root, mountinfoPath: mountinfo });
      assert.equal(partial.version, 'v2');
      assert.match(partial.problem ?? '', /^cgroups v2 controllers cpuset, pids are not available at /);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('says what is wrong when nothing is mounted', async () => {
    const root = mkdtempSync(join(tmpdir(), 'fake-cgroupfs-'));
    try {
      const mountinfo = join(root, 'mountinfo');
      writeFileSync(mountinfo, '22 1 254:0 / / rw - ext4 /dev/vda rw\n');
      const facts = await detectCgroups({ root, mountinfoPath: mountinfo });
      assert.equal(facts.version, undefined);
      assert.match(facts.problem ?? '', /no cgroup hierarchy found \(nothing is mounted at /);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

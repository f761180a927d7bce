/**
 * The TaskStats loop on a fake cgroupfs (test/support/fake-cgroupfs.ts): a stream opens each
 * stats file once and re-reads the open files for every sample (issue 16).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FakeCgroupfs } from '../../test/support/fake-cgroupfs.js';
import { nomadTaskCgroup, taskCgroupLocation } from '../cgroup/placement.js';
import { createTaskCgroup } from '../cgroup/task-cgroup.js';
import type { TaskHandle } from './task.js';
import { taskStats } from './task-stats.js';

const openFds = () => readdirSync('/proc/self/fd').length;

describe('taskStats', () => {
  it('opens each stats file once per stream, reads the new values every sample and closes them at the end', async () => {
    const fs = FakeCgroupfs.v2({ subtree: 'cpuset cpu memory pids' });
    try {
      const cgroup = await createTaskCgroup(nomadTaskCgroup({ version: 'v2', root: fs.root, allocId: 'a1', taskName: 'web' }), { io: fs });
      const scope = 'nomad.slice/share.slice/a1.web.scope';
      const handle = { cgroup, state: 'running' } as unknown as TaskHandle;
      const fdsBefore = openFds();
      const usages: Array<number | undefined> = [];
      for await (const usage of taskStats(handle, 100, [])) {
        usages.push(usage.stats.memory.usage);
        if (usages.length === 3) break;
        fs.setFile(`${scope}/memory.current`, `${usages.length * 4096}\n`);
      }
      assert.deepEqual(usages, [0, 4096, 8192]);
      assert.deepEqual(
        fs.opened,
        ['cpu.stat', 'memory.stat', 'memory.current', 'memory.peak', 'memory.swap.current'].map((f) => `${scope}/${f}`),
      );
      assert.equal(openFds(), fdsBefore);
    } finally {
      fs.dispose();
    }
  });

  it('closes the open stats files once, however often close() is called', async () => {
    const fs = FakeCgroupfs.v1();
    try {
      const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v1', root: fs.root, path: 'nomad/a1.web' }), { io: fs });
      const fdsBefore = openFds();
      const reader = await cgroup.openStats();
      assert.equal(openFds(), fdsBefore + 10);
      assert.equal(reader.read().memory.usage, 0);
      reader.close();
      reader.close();
      assert.equal(openFds(), fdsBefore);
    } finally {
      fs.dispose();
    }
  });
});

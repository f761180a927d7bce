/**
 * The task cgroup on fake cgroupfs trees (test/support/fake-cgroupfs.ts), v2 and v1, with a
 * real `sleep` process moved in and killed. The real v1 host is covered by
 * task-cgroup-host.test.ts.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { FakeCgroupfs } from '../../test/support/fake-cgroupfs.js';
import { nomadTaskCgroup, taskCgroupLocation } from './placement.js';
import { createTaskCgroup } from './task-cgroup.js';

const MIB = 1024 * 1024;
const fixture = (path: string) => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/cgroup/${path}`, import.meta.url)), 'utf8');

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function sleeper(): { child: ChildProcess; pid: number; exited: Promise<[number | null, NodeJS.Signals | null]> } {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(child);
  assert.ok(child.pid !== undefined);
  return { child, pid: child.pid, exited: once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]> };
}

describe('task cgroup on a fake cgroups v2 tree', () => {
  it('creates the scope under nomad.slice, enabling controllers down the tree', async () => {
    const fs = FakeCgroupfs.v2({ subtree: 'memory pids' });
    try {
      const location = nomadTaskCgroup({ version: 'v2', root: fs.root, allocId: 'a1', taskName: 'web' });
      const cgroup = await createTaskCgroup(location, { io: fs });
      assert.equal(cgroup.dir(), `${fs.root}/nomad.slice/share.slice/a1.web.scope`);
      assert.equal(fs.file('cgroup.subtree_control'), 'cpuset cpu memory pids');
      assert.equal(fs.file('nomad.slice/cgroup.subtree_control'), 'cpuset cpu memory pids');
      assert.equal(fs.file('nomad.slice/share.slice/cgroup.subtree_control'), 'cpuset cpu memory pids');
      assert.deepEqual(
        fs.writes.map((w) => `${w.path} ${w.value}`),
        [
          'cgroup.subtree_control +cpu +cpuset',
          'nomad.slice/cgroup.subtree_control +cpu +cpuset +memory +pids',
          'nomad.slice/share.slice/cgroup.subtree_control +cpu +cpuset +memory +pids',
        ],
      );
      assert.ok(existsSync(`${cgroup.dir()}/cpu.weight`), 'the scope got the cpu controller files');
      // idempotent: Nomad's client may have created it already
      await createTaskCgroup(location, { io: fs });
      assert.equal(fs.writes.length, 3);
    } finally {
      fs.dispose();
    }
  });

  it('applies limits, adds a process, reads stats and OOM kills, kills and removes the scope', async () => {
    const fs = FakeCgroupfs.v2({ subtree: 'cpuset cpu io memory pids' });
    try {
      const cgroup = await createTaskCgroup(nomadTaskCgroup({ version: 'v2', root: fs.root, allocId: 'a1', taskName: 'web' }), { io: fs });
      const scope = 'nomad.slice/share.slice/a1.web.scope';
      await cgroup.applyLimits({ cpuShares: 1024, cpusetCpus: '0-1', memoryLimitBytes: 256 * MIB, memorySoftLimitBytes: 128 * MIB, pidsLimit: 64 });
      assert.deepEqual(
        ['cpu.weight', 'cpuset.cpus', 'memory.max', 'memory.low', 'pids.max'].map((f) => fs.file(`${scope}/${f}`)),
        ['100', '0-1', '268435456', '134217728', '64'],
      );

      const task = sleeper();
      await cgroup.addProcess(task.pid);
      assert.deepEqual(await cgroup.processes(), [task.pid]);

      for (const file of ['cpu.stat', 'memory.stat', 'memory.current', 'memory.peak', 'memory.swap.current', 'memory.events']) {
        fs.setFile(`${scope}/${file}`, fixture(`v2-task/${file}`));
      }
      const stats = await cgroup.readStats();
      assert.equal(stats.cpu.totalNs, 1_843_262_000);
      assert.equal(stats.memory.usage, 65_011_712);
      assert.equal(stats.memory.rss, 52_428_800);
      assert.equal(await cgroup.readOomKills(), 1);
      // the OOM watch's counter: opened once, each read the file as it is now
      const counter = await cgroup.openOomKills();
      assert.equal(counter?.read(), 1);
      fs.setFile(`${scope}/memory.events`, fixture('v2-task/memory.events').replace(/^oom_kill \d+$/m, 'oom_kill 3'));
      assert.equal(counter?.read(), 3);
      counter?.close();
      assert.equal(fs.opened.filter((f) => f.endsWith('memory.events')).length, 1);

      await assert.rejects(cgroup.remove({ timeoutMs: 50 }), {
        code: 'failed_precondition',
        message: `failed to destroy task: ${fs.root}/${scope} still has processes or child cgroups after 50 ms; fix: kill the processes listed in ${fs.root}/${scope}/cgroup.procs on the client, then remove ${fs.root}/${scope} (rmdir)`,
      });
      await cgroup.kill();
      assert.deepEqual(await task.exited, [null, 'SIGKILL']);
      assert.deepEqual(await cgroup.processes(), []);
      await cgroup.remove();
      assert.equal(existsSync(`${fs.root}/${scope}`), false);
      assert.equal(existsSync(`${fs.root}/nomad.slice/share.slice`), true, 'the parent stays');
      await cgroup.remove(); // already gone: fine
    } finally {
      fs.dispose();
    }
  });

  it('says which controllers a parent lacks, and that a parent with processes cannot delegate', async () => {
    const missing = FakeCgroupfs.v2({ controllers: 'cpu io memory pids' });
    try {
      await assert.rejects(createTaskCgroup(taskCgroupLocation({ version: 'v2', root: missing.root, path: 'nomad.slice/t.scope' }), { io: missing }), {
        code: 'failed_precondition',
        message: `failed to start task: controllers cpuset are not available in ${missing.root} (cgroup.controllers: cpu io memory pids); fix: enable them in the parent's cgroup.subtree_control, or delegate them to the Nomad client's cgroup (systemd: Delegate=yes)`,
      });
    } finally {
      missing.dispose();
    }
    const busy = FakeCgroupfs.v2({ subtree: 'cpuset cpu memory pids' });
    const task = sleeper();
    try {
      await busy.mkdir(`${busy.root}/workload.slice`);
      await busy.write(`${busy.root}/workload.slice/cgroup.procs`, String(task.pid));
      await assert.rejects(createTaskCgroup(taskCgroupLocation({ version: 'v2', root: busy.root, path: 'workload.slice/t.scope' }), { io: busy }), {
        message: `failed to start task: cannot enable cpu, cpuset, memory, pids in ${busy.root}/workload.slice/cgroup.subtree_control: ${busy.root}/workload.slice has processes of its own; fix: cgroups v2 lets only a cgroup without processes hand controllers to its children; put the tasks under a parent that has none (Nomad uses nomad.slice)`,
      });
    } finally {
      task.child.kill('SIGKILL');
      await task.exited;
      busy.dispose();
    }
  });

  it('refuses bad limits before writing anything', async () => {
    const fs = FakeCgroupfs.v2({ subtree: 'cpuset cpu memory pids' });
    try {
      const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v2', root: fs.root, path: 't.scope' }), { io: fs });
      const before = fs.writes.length;
      await assert.rejects(cgroup.applyLimits({ pidsLimit: 10, memoryLimitBytes: -1 }), { code: 'invalid_argument', message: /field "memoryLimitBytes"/ });
      await assert.rejects(cgroup.addProcess(-3), {
        code: 'invalid_argument',
        message: 'failed to start task: pid -3 is not a positive whole number',
      });
      assert.equal(fs.writes.length, before);
    } finally {
      fs.dispose();
    }
  });
});

describe('task cgroup on a fake cgroups v1 tree', () => {
  /** Nomad's client init (cgroupslib/init.go): /nomad with share and reserve cpuset partitions. */
  async function nomadV1(controllers?: readonly string[]): Promise<FakeCgroupfs> {
    const fs = FakeCgroupfs.v1({ cpus: '0-3', mems: '0', ...(controllers === undefined ? {} : { controllers }) });
    for (const dir of ['cpuset/nomad', 'cpuset/nomad/share', 'cpuset/nomad/reserve']) {
      await fs.mkdir(`${fs.root}/${dir}`);
      fs.setFile(`${dir}/cpuset.mems`, '0\n');
    }
    fs.setFile('cpuset/nomad/cpuset.cpus', '0-3\n');
    fs.setFile('cpuset/nomad/share/cpuset.cpus', '0-1\n');
    fs.setFile('cpuset/nomad/reserve/cpuset.cpus', '2-3\n');
    return fs;
  }

  it('spans every hierarchy, joins the shared cpuset partition, freezes to kill, keeps the partition', async () => {
    const fs = await nomadV1();
    try {
      const location = nomadTaskCgroup({ version: 'v1', root: fs.root, allocId: 'a1', taskName: 'web', cpusetCgroupPath: `${fs.root}/cpuset/nomad/share` });
      const cgroup = await createTaskCgroup(location, { io: fs });
      for (const c of ['cpu', 'cpuacct', 'memory', 'pids', 'freezer']) assert.ok(existsSync(`${fs.root}/${c}/nomad/a1.web`), `${c} dir`);
      assert.equal(existsSync(`${fs.root}/cpuset/nomad/a1.web`), false);

      await assert.rejects(cgroup.applyLimits({ cpusetCpus: '2' }), {
        code: 'failed_precondition',
        message: `failed to start task: the task's cpuset cgroup ${fs.root}/cpuset/nomad/share is shared with other tasks, so cpusetCpus cannot be set there; fix: give a task with reserved cores its own cpuset cgroup (Nomad: <parent>/reserve/<alloc>.<task>)`,
      });
      await cgroup.applyLimits({ cpuShares: 500, memoryLimitBytes: 64 * MIB, memorySoftLimitBytes: 32 * MIB, pidsLimit: 16 });
      assert.deepEqual(
        [
          'cpu/nomad/a1.web/cpu.shares',
          'memory/nomad/a1.web/memory.limit_in_bytes',
          'memory/nomad/a1.web/memory.soft_limit_in_bytes',
          'pids/nomad/a1.web/pids.max',
          'cpuset/nomad/share/cpuset.cpus',
        ].map((f) => fs.file(f)),
        ['500', '67108864', '33554432', '16', '0-1'],
      );

      const task = sleeper();
      await cgroup.addProcess(task.pid);
      for (const dir of ['cpuset/nomad/share', ...['cpu', 'cpuacct', 'memory', 'pids', 'freezer'].map((c) => `${c}/nomad/a1.web`)]) {
        assert.equal(fs.file(`${dir}/cgroup.procs`), String(task.pid), dir);
      }

      for (const [controller, files] of [
        ['cpuacct', ['cpuacct.usage', 'cpuacct.usage_user', 'cpuacct.usage_sys', 'cpuacct.stat']],
        ['cpu', ['cpu.stat']],
        [
          'memory',
          [
            'memory.stat',
            'memory.usage_in_bytes',
            'memory.max_usage_in_bytes',
            'memory.kmem.usage_in_bytes',
            'memory.kmem.max_usage_in_bytes',
            'memory.oom_control',
          ],
        ],
      ] as const) {
        for (const file of files) fs.setFile(`${controller}/nomad/a1.web/${file}`, fixture(`v1-task/${file}`));
      }
      const stats = await cgroup.readStats();
      assert.deepEqual(stats.cpu, { totalNs: 512041271, userNs: 455764579, systemNs: 55988923, throttledPeriods: 10, throttledTimeNs: 482884740 });
      assert.equal(stats.memory.usage, 8753152);
      assert.equal(await cgroup.readOomKills(), 0);

      await cgroup.kill();
      assert.deepEqual(await task.exited, [null, 'SIGKILL']);
      assert.deepEqual(
        fs.writes.filter((w) => w.path.endsWith('freezer.state')).map((w) => w.value),
        ['FROZEN', 'THAWED'],
      );
      await cgroup.remove();
      for (const c of ['cpu', 'cpuacct', 'memory', 'pids', 'freezer']) assert.equal(existsSync(`${fs.root}/${c}/nomad/a1.web`), false, `${c} dir`);
      assert.equal(existsSync(`${fs.root}/cpuset/nomad/share`), true, 'the shared partition stays');
      assert.equal(existsSync(`${fs.root}/memory/nomad`), true, 'the parent stays');
    } finally {
      fs.dispose();
    }
  });

  it('readies a join: a process outside the task is written to the cpuset cgroup it is in, and nothing when it is gone', async () => {
    const fs = await nomadV1();
    try {
      const location = nomadTaskCgroup({ version: 'v1', root: fs.root, allocId: 'a1', taskName: 'web', cpusetCgroupPath: `${fs.root}/cpuset/nomad/share` });
      const cgroup = await createTaskCgroup(location, { io: fs });
      const outside = sleeper();
      // its real cpuset cgroup (/proc/<pid>/cgroup), made in the fake tree
      const own = readFileSync(`/proc/${outside.pid}/cgroup`, 'utf8')
        .split('\n')
        .map((line) => line.split(':'))
        .find((fields) => (fields[1] ?? '').split(',').includes('cpuset'))?.[2];
      assert.ok(own !== undefined, 'this host mounts a cpuset hierarchy');
      let dir = `${fs.root}/cpuset`;
      for (const part of own.split('/').filter((p) => p !== '')) {
        dir = `${dir}/${part}`;
        await fs.mkdir(dir);
      }
      const before = fs.writes.length;
      await cgroup.readyJoin(outside.pid);
      assert.deepEqual(fs.writes.slice(before), [{ path: posix.join('cpuset', own, 'cgroup.procs'), value: String(outside.pid) }]);
      outside.child.kill('SIGKILL');
      await outside.exited;
      await cgroup.readyJoin(outside.pid);
      assert.equal(fs.writes.length, before + 1, 'nothing written for a process that is gone');
    } finally {
      fs.dispose();
    }
  });

  it('gives a reserved-cores task its own cpuset cgroup with the parent cpus and mems, then its cores', async () => {
    const fs = await nomadV1();
    try {
      const location = nomadTaskCgroup({
        version: 'v1',
        root: fs.root,
        allocId: 'a1',
        taskName: 'db',
        cpusetCgroupPath: `${fs.root}/cpuset/nomad/reserve/a1.db`,
      });
      const cgroup = await createTaskCgroup(location, { io: fs });
      assert.equal(fs.file('cpuset/nomad/reserve/a1.db/cpuset.cpus'), '2-3');
      assert.equal(fs.file('cpuset/nomad/reserve/a1.db/cpuset.mems'), '0');
      await cgroup.applyLimits({ cpusetCpus: '3' });
      assert.equal(fs.file('cpuset/nomad/reserve/a1.db/cpuset.cpus'), '3');
      await cgroup.remove();
      assert.equal(existsSync(`${fs.root}/cpuset/nomad/reserve/a1.db`), false);
      assert.equal(existsSync(`${fs.root}/cpuset/nomad/reserve`), true);
    } finally {
      fs.dispose();
    }
  });

  it('works without the optional cpuacct and freezer hierarchies, and requires pids', async () => {
    const fs = await nomadV1(['cpu', 'cpuset', 'memory', 'pids']);
    try {
      const cgroup = await createTaskCgroup(nomadTaskCgroup({ version: 'v1', root: fs.root, allocId: 'a1', taskName: 'web' }), { io: fs });
      const task = sleeper();
      await cgroup.addProcess(task.pid);
      assert.deepEqual((await cgroup.readStats()).measuredCpu, ['Throttled Periods', 'Throttled Time']);
      await cgroup.kill();
      assert.deepEqual(await task.exited, [null, 'SIGKILL']);
      await cgroup.remove();
      assert.equal(existsSync(`${fs.root}/memory/nomad/a1.web`), false);
    } finally {
      fs.dispose();
    }
    const noPids = await nomadV1(['cpu', 'cpuset', 'memory']);
    try {
      await assert.rejects(createTaskCgroup(nomadTaskCgroup({ version: 'v1', root: noPids.root, allocId: 'a1', taskName: 'web' }), { io: noPids }), {
        code: 'failed_precondition',
        message: `failed to start task: the cgroups v1 pids controller is not mounted at ${noPids.root}/pids; fix: mount it (mount -t cgroup -o pids cgroup ${noPids.root}/pids) or boot with cgroups v2`,
      });
    } finally {
      noPids.dispose();
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cgroupPathProblem, controllerDir, nomadTaskCgroup, procCgroupIn, procCgroupPath, taskCgroupLocation, taskCgroupProblem, v1Dirs } from './placement.js';

const ALLOC = '3dd3add4-81d1-f2b8-bdfd-7e1af5f9aa02';

describe('nomadTaskCgroup', () => {
  it("takes a v2 task's unified cgroup from CpusetCgroupPath", () => {
    assert.deepEqual(
      nomadTaskCgroup({ version: 'v2', allocId: ALLOC, taskName: 'web', cpusetCgroupPath: `/sys/fs/cgroup/nomad.slice/reserve.slice/${ALLOC}.web.scope` }),
      { version: 'v2', root: '/sys/fs/cgroup', path: `nomad.slice/reserve.slice/${ALLOC}.web.scope` },
    );
  });

  it("falls back to Nomad 1.11's v2 default: nomad.slice/share.slice/<alloc>.<task>.scope", () => {
    assert.deepEqual(nomadTaskCgroup({ version: 'v2', allocId: ALLOC, taskName: 'web', cpusetCgroupPath: '' }), {
      version: 'v2',
      root: '/sys/fs/cgroup',
      path: `nomad.slice/share.slice/${ALLOC}.web.scope`,
    });
  });

  it('joins the shared v1 cpuset partition and reads the cgroup parent from it', () => {
    assert.deepEqual(nomadTaskCgroup({ version: 'v1', allocId: ALLOC, taskName: 'web', cpusetCgroupPath: '/sys/fs/cgroup/cpuset/nomad/share' }), {
      version: 'v1',
      root: '/sys/fs/cgroup',
      path: `nomad/${ALLOC}.web`,
      cpusetPath: 'nomad/share',
      sharedCpuset: true,
    });
    assert.deepEqual(
      nomadTaskCgroup({ version: 'v1', root: '/tmp/cg', allocId: 'a1', taskName: 'db', cpusetCgroupPath: '/tmp/cg/cpuset/custom/nomad/share' }),
      {
        version: 'v1',
        root: '/tmp/cg',
        path: 'custom/nomad/a1.db',
        cpusetPath: 'custom/nomad/share',
        sharedCpuset: true,
      },
    );
  });

  it('owns a v1 reserved-cores cpuset cgroup: <parent>/reserve/<alloc>.<task>', () => {
    assert.deepEqual(nomadTaskCgroup({ version: 'v1', allocId: 'a1', taskName: 'db', cpusetCgroupPath: '/sys/fs/cgroup/cpuset/nomad/reserve/a1.db' }), {
      version: 'v1',
      root: '/sys/fs/cgroup',
      path: 'nomad/a1.db',
      cpusetPath: 'nomad/reserve/a1.db',
    });
  });

  it('refuses a cgroup path it cannot place, naming it', () => {
    assert.throws(() => nomadTaskCgroup({ version: 'v1', allocId: 'a1', taskName: 'db', cpusetCgroupPath: '/sys/fs/cgroup/cpuset/elsewhere/a1.db' }), {
      code: 'invalid_argument',
      message:
        'failed to start task: CpusetCgroupPath "/sys/fs/cgroup/cpuset/elsewhere/a1.db" is neither <parent>/share nor <parent>/reserve/a1.db below /sys/fs/cgroup/cpuset; fix: use a Nomad client of version 1.11, whose cgroup layout the plugin knows, or report this CpusetCgroupPath to the plugin\'s maintainers',
    });
    assert.throws(() => nomadTaskCgroup({ version: 'v2', allocId: 'a1', taskName: 'db', cpusetCgroupPath: '/sys/fs/cgroup/../etc' }), {
      message: 'failed to start task: CpusetCgroupPath "/sys/fs/cgroup/../etc" contains a ".." segment',
    });
    assert.throws(() => nomadTaskCgroup({ version: 'v2', allocId: 'a1', taskName: 'db', cpusetCgroupPath: '/tmp/x.scope' }), {
      message: 'failed to start task: CpusetCgroupPath "/tmp/x.scope" is not below /sys/fs/cgroup',
    });
    assert.throws(() => nomadTaskCgroup({ version: 'v2', allocId: 'a1', taskName: 'x/y' }), {
      message: 'failed to start task: task name "x/y" cannot be part of a cgroup name',
    });
  });
});

describe('taskCgroupLocation', () => {
  it('accepts only normalised relative paths without "." or ".."', () => {
    assert.equal(cgroupPathProblem('nomad.slice/share.slice/a.web.scope'), undefined);
    assert.equal(cgroupPathProblem('/nomad/a'), 'is absolute; give it relative to the cgroup root');
    assert.equal(cgroupPathProblem('nomad/../a'), 'contains a "." or ".." segment');
    assert.equal(cgroupPathProblem('./a'), 'contains a "." or ".." segment');
    assert.equal(cgroupPathProblem('nomad//a'), 'is not normalised (remove "//" or a trailing "/")');
    assert.equal(cgroupPathProblem('nomad/a/'), 'is not normalised (remove "//" or a trailing "/")');
    assert.equal(cgroupPathProblem(''), 'is empty');
    assert.throws(() => taskCgroupLocation({ version: 'v1', path: 'nomad/a', cpusetPath: '../a' }), {
      code: 'invalid_argument',
      message: 'failed to start task: cpusetPath "../a" contains a "." or ".." segment',
    });
    assert.throws(() => taskCgroupLocation({ version: 'v2', path: 'a', root: 'sys/fs/cgroup' }), {
      message: 'failed to start task: cgroup root "sys/fs/cgroup" is not an absolute path',
    });
    assert.throws(() => taskCgroupLocation({ version: 'v2', path: 'a', cpusetPath: 'b' }), {
      message: 'failed to start task: cpusetPath and sharedCpuset apply to cgroups v1 only; fix: on v2 the task has one cgroup: give only path',
    });
  });

  it('lists the v1 directories, cpuset first, and which the task owns', () => {
    const shared = nomadTaskCgroup({ version: 'v1', root: '/cg', allocId: 'a1', taskName: 'web' });
    assert.deepEqual(v1Dirs(shared), [
      { controller: 'cpuset', dir: '/cg/cpuset/nomad/share', owned: false },
      { controller: 'cpu', dir: '/cg/cpu/nomad/a1.web', owned: true },
      { controller: 'cpuacct', dir: '/cg/cpuacct/nomad/a1.web', owned: true },
      { controller: 'memory', dir: '/cg/memory/nomad/a1.web', owned: true },
      { controller: 'pids', dir: '/cg/pids/nomad/a1.web', owned: true },
      { controller: 'freezer', dir: '/cg/freezer/nomad/a1.web', owned: true },
    ]);
    assert.equal(controllerDir(shared, 'memory'), '/cg/memory/nomad/a1.web');
    const unified = taskCgroupLocation({ version: 'v2', root: '/cg', path: 'nomad.slice/t.scope' });
    assert.equal(controllerDir(unified, 'memory'), '/cg/nomad.slice/t.scope');
    assert.equal(controllerDir(unified, 'cpuset'), '/cg/nomad.slice/t.scope');
  });
});

describe('taskCgroupProblem and procCgroupIn', () => {
  const task = { allocId: ALLOC, taskName: 'web', key: `${ALLOC}_web_x1` };

  it("accepts exactly the cgroups the driver would use for the task, whatever Nomad's cgroup_parent", () => {
    for (const cpusetCgroupPath of [undefined, '/sys/fs/cgroup/cpuset/nomad/share', `/sys/fs/cgroup/cpuset/custom/reserve/${ALLOC}.web`]) {
      assert.equal(
        taskCgroupProblem(
          nomadTaskCgroup({ version: 'v1', allocId: ALLOC, taskName: 'web', ...(cpusetCgroupPath === undefined ? {} : { cpusetCgroupPath }) }),
          task,
        ),
        undefined,
      );
    }
    assert.equal(taskCgroupProblem(nomadTaskCgroup({ version: 'v2', allocId: ALLOC, taskName: 'web' }), task), undefined);
    assert.equal(taskCgroupProblem(taskCgroupLocation({ version: 'v2', path: `nomad-driver-nix/${task.key}` }), task), undefined);
    assert.equal(
      taskCgroupProblem(nomadTaskCgroup({ version: 'v2', allocId: ALLOC, taskName: 'db' }), task),
      `is neither nomad-driver-nix/${task.key} nor Nomad's cgroup of the task (…/${ALLOC}.web.scope)`,
    );
    assert.equal(
      taskCgroupProblem(taskCgroupLocation({ version: 'v1', path: 'nomad' }), task),
      `is neither nomad-driver-nix/${task.key} nor Nomad's cgroup of the task (…/${ALLOC}.web)`,
    );
  });

  it('says why a task name cannot name a cgroup, as a cause (not a whole error message)', () => {
    assert.equal(
      taskCgroupProblem(nomadTaskCgroup({ version: 'v1', allocId: ALLOC, taskName: 'web' }), { ...task, taskName: 'x/y' }),
      'task name "x/y" cannot be part of a cgroup name',
    );
  });

  it('reads membership from /proc/<pid>/cgroup: the unified line on v2, the memory hierarchy on v1, the cgroup or below it', () => {
    const v1 = taskCgroupLocation({ version: 'v1', path: `nomad/${ALLOC}.web` });
    const v2 = taskCgroupLocation({ version: 'v2', path: `nomad.slice/share.slice/${ALLOC}.web.scope` });
    const v1Text = `9:name=systemd:/\n8:pids:/nomad/${ALLOC}.web\n4:memory:/nomad/${ALLOC}.web\n0::/\n`;
    assert.equal(procCgroupIn(v1Text, v1), true);
    assert.equal(procCgroupIn(v1Text.replace(`4:memory:/nomad/${ALLOC}.web`, '4:memory:/'), v1), false, 'only the pids hierarchy');
    assert.equal(procCgroupIn(`0::/nomad.slice/share.slice/${ALLOC}.web.scope/sub\n`, v2), true);
    assert.equal(procCgroupIn(`0::/nomad.slice/share.slice/${ALLOC}.web.scope2\n`, v2), false, 'a sibling with a longer name');
    assert.equal(procCgroupIn('0::/\n', v2), false);
    // the path is all after the second colon; v1 by the named controller's line
    assert.equal(procCgroupPath('5:cpu,cpuacct:/a:b\n4:memory:/m\n0::/u\n', 'v1', 'cpuacct'), '/a:b');
    assert.equal(procCgroupPath('5:cpu,cpuacct:/a:b\n4:memory:/m\n0::/u\n', 'v1'), '/m');
    assert.equal(procCgroupPath('5:cpu,cpuacct:/a:b\n4:memory:/m\n0::/u\n', 'v2'), '/u');
    assert.equal(procCgroupPath('4:memory:/m\n', 'v1', 'pids'), undefined);
  });
});

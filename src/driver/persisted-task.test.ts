import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePersistedTask, encodePersistedTask, PERSISTED_TASK_VERSION, type PersistedTask } from './persisted-task.js';

const TASK: PersistedTask = {
  version: PERSISTED_TASK_VERSION,
  taskId: 'a1/main/x1',
  runtime: 'runc',
  key: 'a1_main_x1',
  stateDir: '/var/lib/nomad-driver-nix/tasks/a1_main_x1',
  gcRootKey: 'a1_main_x1',
  viewKey: '0123456789abcdef0123456789abcdef',
  etcKey: 'e1',
  pid: 100,
  pidStartTime: 5000,
  initPid: 101,
  initStartTime: 5001,
  startedAt: '2026-11-22T10:00:00.000Z',
  cgroup: { version: 'v1', root: '/sys/fs/cgroup', path: 'nomad/a1.main', cpusetPath: 'nomad/share', sharedCpuset: true },
  oomKillsBefore: 0,
  user: { name: 'nobody', uid: 65534, gid: 65534 },
  capabilities: [],
  argv: ['/nix/store/x-sh/bin/sh', '-c', 'true'],
  cwd: '/local',
  plan: { ops: [{ kind: 'tmpfs', target: '/tmp' }] },
};

const decode = (value: unknown, taskId = TASK.taskId) => decodePersistedTask(Buffer.from(JSON.stringify(value)), taskId);
const fails = (value: unknown, message: RegExp, taskId = TASK.taskId) => assert.throws(() => decode(value, taskId), { name: 'DriverError', message });

describe('persisted task (driver_state)', () => {
  it('round-trips', () => {
    assert.deepEqual(decodePersistedTask(encodePersistedTask(TASK), TASK.taskId), TASK);
  });

  it('names the bad field and never accepts another task\'s state', () => {
    fails({ ...TASK, version: 1 }, /^failed to recover task: driver_state field version "1" is not 2 \(written by another plugin version\); fix: the task cannot be recovered/);
    fails(TASK, /driver_state field taskId "a1\/main\/x1" does not belong to task "a2\/main\/x2"/, 'a2/main/x2');
    fails({ ...TASK, runtime: 'docker' }, /field runtime "docker" is not "bwrap" or "runc"/);
    fails({ ...TASK, pid: 1 }, /field pid "1" is not a whole number of 2 or more/);
    fails({ ...TASK, stateDir: 'tasks/x' }, /field stateDir "tasks\/x" is not an absolute path/);
    fails({ ...TASK, key: '../etc' }, /field key "..\/etc" is not a file-name-safe key/);
    fails({ ...TASK, cgroup: { ...TASK.cgroup, path: '../../x' } }, /field cgroup.path "..\/..\/x" contains a "." or ".." segment/);
    fails({ ...TASK, capabilities: ['net_admin'] }, /field capabilities .* is not a list of CAP_ names/);
    fails({ ...TASK, argv: [] }, /field argv "\[\]" is not a non-empty list of strings/);
    assert.throws(() => decodePersistedTask(Buffer.from('{'), TASK.taskId), { message: /^failed to recover task: driver_state is not JSON/ });
  });
});

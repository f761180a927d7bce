import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePersistedTask, decodeTaskFile, encodePersistedTask, type PersistedTask } from './persisted-task.js';

const ALLOC = '6f1c2b3a-0000-4000-8000-000000000001';
const TASK_ID = `${ALLOC}/main/x1`;
const KEY = `${ALLOC}_main_x1`;
const STATE_ROOT = '/var/lib/nomad-driver-nix';
const EXPECT = { taskId: TASK_ID, stateRoot: STATE_ROOT };

const TASK: PersistedTask = {
  taskId: TASK_ID,
  nodeId: '0b6c7a1e-1111-4222-8333-444455556666',
  runtime: 'runc',
  key: KEY,
  stateDir: `${STATE_ROOT}/tasks/${KEY}`,
  viewKey: '0123456789abcdef0123456789abcdef',
  etcKey: 'fedcba9876543210fedcba9876543210',
  pid: 100,
  pidStartTime: 5000,
  initPid: 101,
  initStartTime: 5001,
  startedAt: new Date('2026-11-22T10:00:00.000Z'),
  cgroup: { version: 'v1', root: '/sys/fs/cgroup', path: `nomad/${ALLOC}.main`, cpusetPath: 'nomad/share', sharedCpuset: true },
  oomKillsBefore: 0,
  user: { uid: 65534, gid: 65534 },
  capabilities: [],
  argv: ['/nix/store/x-sh/bin/sh', '-c', 'true'],
  cwd: '/local',
};
/** The record as stored (version 4). */
const STORED = JSON.parse(encodePersistedTask(TASK).toString('utf8')) as Record<string, unknown>;
/** A record as plugin versions with persisted-task version 3 wrote it: with the GC root key, user name and root plan. */
const V3 = {
  ...STORED,
  version: 3,
  gcRootKey: KEY,
  user: { name: 'nobody', uid: 65534, gid: 65534 },
  plan: { ops: [{ kind: 'tmpfs', target: '/tmp' }] },
};
/** A record as plugin versions with persisted-task version 2 wrote it. */
const { nodeId: _node, ...V2_BASE }: Record<string, unknown> = V3;
const V2 = { ...V2_BASE, version: 2, stateDir: TASK.stateDir };

const decode = (value: unknown, expect = EXPECT) => decodePersistedTask(Buffer.from(JSON.stringify(value)), expect);
const fails = (value: unknown, message: RegExp, expect = EXPECT) => assert.throws(() => decode(value, expect), { name: 'DriverError', message });

describe('persisted task (driver_state)', () => {
  it("round-trips, and stores no host path of the driver's: the state dir is derived from state_dir", () => {
    assert.deepEqual(decodePersistedTask(encodePersistedTask(TASK), EXPECT), TASK);
    assert.equal('stateDir' in JSON.parse(encodePersistedTask(TASK).toString('utf8')), false);
    assert.equal(decode(STORED, { taskId: TASK_ID, stateRoot: '/srv/nix-state' }).stateDir, `/srv/nix-state/tasks/${KEY}`);
  });

  it('decodes a version 2 record (tasks started by the previous plugin version) whose stateDir is the derived one', () => {
    assert.deepEqual(decode(V2), { ...TASK, nodeId: '' });
  });

  it('decodes a version 3 record (tasks started before the upgrade to version 4), checking the fields version 4 dropped', () => {
    assert.deepEqual(decode(V3), TASK);
    fails({ ...V3, plan: { ops: 'x' } }, /^failed to recover task: driver_state field plan "\{\\"ops\\":\\"x\\"\}" is not a root plan;/);
    fails({ ...V3, user: { uid: 65534, gid: 65534 } }, /driver_state field user .* is not \{name, uid, gid\}/);
    fails({ ...V2, plan: undefined }, /driver_state field plan "undefined" is not a root plan/);
  });

  it('stores only what recovery reads: no root plan, GC root key (the state key) or user name', () => {
    assert.deepEqual(Object.keys(STORED).sort(), [
      'argv',
      'capabilities',
      'cgroup',
      'cwd',
      'etcKey',
      'initPid',
      'initStartTime',
      'key',
      'nodeId',
      'oomKillsBefore',
      'pid',
      'pidStartTime',
      'runtime',
      'startedAt',
      'taskId',
      'user',
      'version',
      'viewKey',
    ]);
    assert.equal(STORED.version, 4);
    assert.deepEqual(STORED.user, { uid: 65534, gid: 65534 });
    fails({ ...STORED, user: 'nobody' }, /driver_state field user "nobody" is not \{uid, gid\}/);
  });

  it('decodes a task.json for the task it names (the orphan sweep), with the same checks', () => {
    assert.deepEqual(decodeTaskFile(STORED, STATE_ROOT), TASK);
    assert.deepEqual(decodeTaskFile(V2, STATE_ROOT), { ...TASK, nodeId: '' });
    assert.throws(() => decodeTaskFile({ ...STORED, taskId: undefined }, STATE_ROOT), {
      message: /driver_state field taskId "undefined" is not a non-empty string/,
    });
    assert.throws(() => decodeTaskFile({ ...STORED, key: 'other_main_x9' }, STATE_ROOT), {
      message: new RegExp(`driver_state field key "other_main_x9" is not the task's key "${KEY}"`),
    });
  });

  it("names the bad field and never accepts another task's state", () => {
    fails(
      { ...STORED, version: 1 },
      /^failed to recover task: driver_state field version "1" is not 4, 3 or 2 \(written by another plugin version\); fix: install the plugin version that started the task to recover it; otherwise Nomad starts the task again$/,
    );
    fails(STORED, /driver_state field taskId "6f1c2b3a-0000-4000-8000-000000000001\/main\/x1" does not belong to task "a2\/main\/x2"/, {
      taskId: 'a2/main/x2',
      stateRoot: STATE_ROOT,
    });
    fails({ ...STORED, runtime: 'docker' }, /field runtime "docker" is not "bwrap" or "runc"/);
    fails({ ...STORED, pid: 1 }, /field pid "1" is not a whole number of 2 or more/);
    fails({ ...STORED, capabilities: ['net_admin'] }, /field capabilities .* is not a list of CAP_ names/);
    fails({ ...STORED, argv: [] }, /field argv "\[\]" is not a non-empty list of strings/);
    assert.throws(() => decodePersistedTask(Buffer.from('{'), EXPECT), { message: /^failed to recover task: driver_state is not JSON/ });
  });

  it("refuses a state dir that is not the task's own dir under the configured state_dir", () => {
    const dir = (stateDir: string, why: string) =>
      `failed to recover task: driver_state field stateDir "${stateDir}" ${why}; fix: check that only root can write the Nomad client's data_dir, where Nomad keeps driver_state; Nomad starts the task again`;
    assert.throws(() => decode({ ...V2, stateDir: '/' }), { message: dir('/', `is not the task's dir ${TASK.stateDir} under the configured state_dir`) });
    assert.throws(() => decode({ ...V2, stateDir: `${STATE_ROOT}/tasks/other_main_x9` }), {
      message: dir(`${STATE_ROOT}/tasks/other_main_x9`, `is not the task's dir ${TASK.stateDir} under the configured state_dir`),
    });
    assert.throws(() => decode({ ...V2, stateDir: `${STATE_ROOT}/tasks/../..` }), { message: dir(`${STATE_ROOT}/tasks/../..`, 'contains a ".." segment') });
    assert.throws(() => decode({ ...V2, stateDir: 'tasks/x' }), { message: dir('tasks/x', 'is not an absolute path') });
    assert.throws(() => decode({ ...V3, stateDir: '/' }), { message: dir('/', 'is not stored in version 3 (derived from state_dir)') });
    assert.throws(() => decode({ ...STORED, stateDir: '/' }), { message: dir('/', 'is not stored in version 4 (derived from state_dir)') });
  });

  it("refuses keys that are not the task's own or break their grammar", () => {
    fails({ ...STORED, key: '../etc' }, /^failed to recover task: driver_state field key "..\/etc" is not a file-name-safe key;/);
    fails({ ...STORED, key: '..' }, /driver_state field key "\.\." is not a file-name-safe key/);
    fails({ ...STORED, key: 'other_main_x9' }, new RegExp(`driver_state field key "other_main_x9" is not the task's key "${KEY}"`));
    fails({ ...V3, gcRootKey: 'other_main_x9' }, new RegExp(`driver_state field gcRootKey "other_main_x9" is not the task's key "${KEY}"`));
    fails({ ...STORED, viewKey: '../../../etc' }, /driver_state field viewKey "..\/..\/..\/etc" is not a key of 32 hex digits/);
    fails({ ...STORED, etcKey: 'e1' }, /driver_state field etcKey "e1" is not a key of 32 hex digits/);
    fails({ ...STORED, nodeId: '../x' }, /driver_state field nodeId "..\/x" is not a Nomad node id/);
  });

  it('refuses a cgroup that is not the one the driver would use for this task', () => {
    const cgroup = (c: unknown, why: string) =>
      fails(
        { ...STORED, cgroup: c },
        new RegExp(
          `^failed to recover task: driver_state field cgroup ${escapeRegExp(JSON.stringify(JSON.stringify(c)))} ${escapeRegExp(why)} \\(not a cgroup of this task\\);`,
        ),
      );
    cgroup(
      { version: 'v1', root: '/sys/fs/cgroup', path: 'system.slice' },
      `is neither nomad-driver-nix/${KEY} nor Nomad's cgroup of the task (…/${ALLOC}.main)`,
    );
    cgroup(
      { version: 'v2', root: '/sys/fs/cgroup', path: 'nomad.slice/share.slice/other.main.scope' },
      `is neither nomad-driver-nix/${KEY} nor Nomad's cgroup of the task (…/${ALLOC}.main.scope)`,
    );
    cgroup(
      { version: 'v2', root: '/sys/fs/cgroup', path: `user.slice/${ALLOC}.main.scope` },
      `is neither nomad-driver-nix/${KEY} nor Nomad's cgroup of the task (…/${ALLOC}.main.scope)`,
    );
    cgroup(
      { version: 'v1', root: '/sys/fs/cgroup', path: 'nomad-driver-nix/other_main_x9' },
      `is neither nomad-driver-nix/${KEY} nor Nomad's cgroup of the task (…/${ALLOC}.main)`,
    );
    cgroup({ version: 'v1', root: '/', path: `nomad/${ALLOC}.main` }, 'has root "/", not /sys/fs/cgroup');
    cgroup({ version: 'v1', root: '/sys/fs/cgroup', path: '../../x' }, 'has path "../../x", which contains a "." or ".." segment');
    cgroup(
      { version: 'v1', root: '/sys/fs/cgroup', path: `nomad/${ALLOC}.main`, cpusetPath: 'system.slice' },
      `has cpuset "system.slice", which is neither nomad/share (shared) nor nomad/reserve/${ALLOC}.main`,
    );
    fails({ ...STORED, cgroup: undefined }, /driver_state field cgroup "undefined" is not a cgroup location/);
    // the task's own: Nomad's (v1 shared or reserved cores, v2) and the driver's
    for (const ok of [
      { version: 'v1', root: '/sys/fs/cgroup', path: `nomad/${ALLOC}.main`, cpusetPath: `nomad/reserve/${ALLOC}.main` },
      { version: 'v2', root: '/sys/fs/cgroup', path: `nomad.slice/reserve.slice/${ALLOC}.main.scope` },
      { version: 'v1', root: '/sys/fs/cgroup', path: `nomad-driver-nix/${KEY}` },
    ])
      assert.deepEqual(decode({ ...STORED, cgroup: ok }).cgroup, ok);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

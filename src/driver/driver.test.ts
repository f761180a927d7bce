/**
 * NixDriver with a fake Runtime, temp dirs and a real Nix store path (busybox, added once):
 * what a failed start, a destroy and a recovery leave behind. Needs root (cgroups, chown).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../../test/support/nix-fixtures.js';
import { detectCgroups } from '../cgroup/detect.js';
import { controllerDir, taskCgroupLocation } from '../cgroup/placement.js';
import { decodePluginConfig, type PluginConfig } from '../config/plugin-config.js';
import { decodeTaskConfig } from '../config/task-config.js';
import { INTERNAL_FIX } from '../errors.js';
import { createLogger } from '../log/logger.js';
import type { ExitStatus, LaunchRequest, LaunchedTask, RecoveryRecord, Runtime } from '../runtime/runtime.js';
import { NixDriver } from './driver.js';
import { taskKey, type StartRequest } from './task.js';

const logger = createLogger({ module: 'test', level: 'error', sink: () => undefined });
const NODE_ID = '0b6c7a1e-1111-4222-8333-444455556666';

/** A task "process" that runs until killed or stopped; nothing real is started. */
class FakeLaunched implements LaunchedTask {
  readonly pid = 3_999_999;
  readonly initPid = 3_999_999;
  readonly pidStartTime = 12_345;
  readonly initStartTime = 12_345;
  readonly startedAt = new Date();
  readonly exited: Promise<ExitStatus>;
  disposed = false;
  private end!: (status: ExitStatus) => void;
  constructor() {
    this.exited = new Promise((resolve) => (this.end = resolve));
  }
  signal(): boolean {
    return true;
  }
  async stop(): Promise<ExitStatus> {
    this.end({ exitCode: 0, signal: 15, oomKilled: false });
    return this.exited;
  }
  async kill(): Promise<ExitStatus> {
    this.end({ exitCode: 0, signal: 9, oomKilled: false });
    return this.exited;
  }
  async dispose(): Promise<void> {
    this.disposed = true;
  }
  execCommand(): never {
    throw new Error('not used');
  }
}

/** A Runtime whose launch and recover do what the test says, counting the calls. */
class FakeRuntime implements Runtime {
  readonly name = 'bwrap';
  readonly mountsAsTaskUser = false;
  readonly ambientCapabilities = false;
  launches = 0;
  recovers = 0;
  constructor(
    private readonly onLaunch: (request: LaunchRequest) => Promise<LaunchedTask> = async () => new FakeLaunched(),
    private readonly onRecover: (record: RecoveryRecord) => Promise<LaunchedTask> = async () => new FakeLaunched(),
  ) {}
  launch(request: LaunchRequest): Promise<LaunchedTask> {
    this.launches += 1;
    return this.onLaunch(request);
  }
  recover(record: RecoveryRecord): Promise<LaunchedTask> {
    this.recovers += 1;
    return this.onRecover(record);
  }
  killOrphan(): void {}
  async forget(): Promise<void> {}
}

function driverWith(runtime: Runtime, config: PluginConfig): NixDriver {
  const driver = new NixDriver({
    logger,
    probe: async () => {
      throw new Error('not probed');
    },
    runtimes: () => runtime,
  });
  driver.setConfig(config, undefined);
  return driver;
}

describe('NixDriver with a fake runtime', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  let dir: string;
  let config: PluginConfig;
  let store: string;

  before(() => {
    store = busyboxPath();
    dir = mkdtempSync(join(tmpdir(), 'driver-test-'));
    config = decodePluginConfig({ state_dir: join(dir, 'state'), gc_roots_dir: join(dir, 'gcroots') });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const request = (): StartRequest => {
    const allocId = randomUUID();
    const allocDir = join(dir, 'alloc', allocId);
    mkdirSync(join(allocDir, 'web', 'local'), { recursive: true });
    mkdirSync(join(allocDir, 'alloc'), { recursive: true });
    const options = decodeTaskConfig({ store_path: store, command: 'bin/busybox', args: ['sleep', '1000'] });
    return {
      id: `${allocId}/web/${randomUUID().slice(0, 8)}`,
      name: 'web',
      allocId,
      jobName: 'j',
      taskGroupName: 'g',
      namespace: 'default',
      nodeId: NODE_ID,
      nodeName: 'client-1',
      env: {},
      user: '',
      allocDir,
      stdoutPath: '/dev/null',
      stderrPath: '/dev/null',
      dns: undefined,
      networkNamespace: undefined,
      resources: undefined,
      mounts: [],
      devices: [],
      config: options,
      closure: { storePath: store, packages: [] },
    };
  };
  /** What the driver keeps on disk for tasks: GC roots, task state dirs, store views, /etc dirs. */
  const leftovers = () => {
    const list = (sub: string) => (existsSync(sub) ? readdirSync(sub).filter((name) => !name.startsWith('.')) : []);
    return {
      gcRoots: list(config.gc_roots_dir),
      tasks: list(join(config.state_dir, 'tasks')),
      views: list(join(config.state_dir, 'views')),
      etc: list(join(config.state_dir, 'etc')),
    };
  };
  const NOTHING = { gcRoots: [], tasks: [], views: [], etc: [] };

  it('unwinds a failing StartTask: no GC root, state dir, store view or /etc dir is left, and the id is not held', async () => {
    let sawState = false;
    const runtime = new FakeRuntime(async (launch) => {
      sawState = existsSync(launch.stateDir) && leftovers().gcRoots.length === 1 && leftovers().views.length > 0 && leftovers().etc.length > 0;
      throw new Error('launch failed');
    });
    const driver = driverWith(runtime, config);
    const task = request();
    await assert.rejects(driver.startTask(task), {
      name: 'DriverError',
      code: 'internal',
      message: `failed to start task: launch failed; fix: ${INTERNAL_FIX}`,
    });
    assert.equal(sawState, true, 'the failing step ran after the GC root, state dir, view and /etc dir were made');
    assert.deepEqual(leftovers(), NOTHING);
    assert.throws(() => driver.inspectTask(task.id), { code: 'not_found' });
    // the id was released: a retry fails in the same step, not as "already started"
    await assert.rejects(driver.startTask(task), { message: `failed to start task: launch failed; fix: ${INTERNAL_FIX}` });
    assert.equal(runtime.launches, 2);
  });

  it('StartTask owns the task cgroup: its limits are written before the launch, the runtime gets only where to put the task, destroy removes it', async () => {
    const { version } = await detectCgroups();
    const task = { ...request(), resources: { cpuShares: 300, memoryMb: 48, memoryMaxMb: 0, cpusetCpus: '', cpusetCgroupPath: '' } };
    const location = taskCgroupLocation({ version: version ?? 'v2', path: `nomad-driver-nix/${taskKey(task.id)}` });
    const memoryMax = join(controllerDir(location, 'memory'), version === 'v1' ? 'memory.limit_in_bytes' : 'memory.max');
    let seen: { placement: Omit<LaunchRequest['cgroup'], 'join' | 'contains' | 'readyJoin'>; limitsField: boolean; memoryMax: string } | undefined;
    const driver = driverWith(
      new FakeRuntime(async (launch) => {
        const { join: _join, contains: _contains, readyJoin: _readyJoin, ...placement } = launch.cgroup;
        seen = { placement, limitsField: 'limits' in launch, memoryMax: readFileSync(memoryMax, 'utf8').trim() };
        return new FakeLaunched();
      }),
      config,
    );
    await driver.startTask(task);
    assert.deepEqual(seen, { placement: { path: `/nomad-driver-nix/${taskKey(task.id)}` }, limitsField: false, memoryMax: String(48 * 1024 * 1024) });
    await driver.destroyTask(task.id, true);
    assert.equal(existsSync(controllerDir(location, 'memory')), false, 'the task cgroup is removed');
    assert.deepEqual(leftovers(), NOTHING);
  });

  it('DestroyTask refuses a running task without force, then kills it and releases everything', async () => {
    const launched: FakeLaunched[] = [];
    const driver = driverWith(new FakeRuntime(async () => (launched.push(new FakeLaunched()), launched.at(-1)!)), config);
    const first = request();
    const second = request();
    await driver.startTask(first);
    await driver.startTask(second);
    const held = leftovers();
    assert.deepEqual([...held.tasks].sort(), [taskKey(first.id), taskKey(second.id)].sort());
    assert.deepEqual([...held.gcRoots].sort(), [taskKey(first.id), taskKey(second.id)].sort());
    await assert.rejects(driver.destroyTask(first.id, false), {
      code: 'failed_precondition',
      message: 'failed to destroy task: the task is still running; fix: stop the task first',
    });
    await driver.destroyTask(first.id, true);
    assert.equal(launched[0]?.disposed, true);
    assert.throws(() => driver.inspectTask(first.id), { code: 'not_found' });
    // the second task of the closure still holds the view and the /etc dir
    assert.deepEqual(leftovers(), { gcRoots: [taskKey(second.id)], tasks: [taskKey(second.id)], views: held.views, etc: held.etc });
    await driver.stopTask(second.id, '', 1000);
    assert.deepEqual(await driver.waitTask(second.id), { exitCode: 0, signal: 15, oomKilled: false });
    await driver.destroyTask(second.id, false);
    assert.deepEqual(leftovers(), NOTHING);
    await driver.destroyTask(second.id, false); // destroyed already: nothing to do
  });

  it('RecoverTask of a task this process knows is a no-op', async () => {
    const runtime = new FakeRuntime();
    const driver = driverWith(runtime, config);
    const task = request();
    const handle = await driver.startTask(task);
    await driver.recoverTask(task.id, handle.driverState(), () => task);
    assert.equal(runtime.recovers, 0);
    assert.equal(driver.inspectTask(task.id), handle);
    await driver.destroyTask(task.id, true);
    assert.deepEqual(leftovers(), NOTHING);
  });

  it('RecoverTask of a task that is gone sweeps everything of it and fails', async () => {
    const task = request();
    const handle = await driverWith(new FakeRuntime(), config).startTask(task);
    const gone = new FakeRuntime(undefined, async () => {
      throw new Error('the task is gone');
    });
    const restarted = driverWith(gone, config);
    await assert.rejects(
      restarted.recoverTask(task.id, handle.driverState(), () => task),
      { code: 'internal', message: `failed to recover task: the task is gone; fix: ${INTERNAL_FIX}` },
    );
    assert.equal(gone.recovers, 1);
    assert.throws(() => restarted.inspectTask(task.id), { code: 'not_found' });
    assert.deepEqual(leftovers(), NOTHING);
  });

  it('RecoverTask of a task started before the upgrade (a version 3 record) recovers it, and destroy leaves nothing', async () => {
    const task = request();
    const handle = await driverWith(new FakeRuntime(), config).startTask(task);
    const v4 = JSON.parse(handle.driverState().toString('utf8')) as Record<string, unknown>;
    const v3 = { ...v4, version: 3, gcRootKey: taskKey(task.id), user: { name: 'nobody', uid: 65534, gid: 65534 }, plan: { ops: [] } };
    const runtime = new FakeRuntime();
    const restarted = driverWith(runtime, config);
    await restarted.recoverTask(task.id, Buffer.from(JSON.stringify(v3)), () => task);
    assert.equal(runtime.recovers, 1);
    assert.equal(restarted.inspectTask(task.id).persisted.key, taskKey(task.id));
    assert.equal(JSON.parse(restarted.inspectTask(task.id).driverState().toString('utf8')).version, 4);
    await restarted.destroyTask(task.id, true);
    assert.deepEqual(leftovers(), NOTHING);
  });

  it('concurrent RecoverTask calls register one task, which holds its view once', async () => {
    const task = request();
    const handle = await driverWith(new FakeRuntime(), config).startTask(task);
    const runtime = new FakeRuntime(undefined, () => new Promise((resolve) => setTimeout(() => resolve(new FakeLaunched()), 50)));
    const restarted = driverWith(runtime, config);
    const driverState = handle.driverState();
    await Promise.all([restarted.recoverTask(task.id, driverState, () => task), restarted.recoverTask(task.id, driverState, () => task)]);
    const recovered = restarted.inspectTask(task.id);
    assert.equal(recovered.state, 'running');
    assert.equal(recovered.persisted?.key, taskKey(task.id));
    await restarted.recoverTask(task.id, driverState, () => task);
    assert.equal(runtime.recovers, 2, 'the third call found the task known');
    await restarted.destroyTask(task.id, true);
    assert.deepEqual(leftovers(), NOTHING);
  });
});

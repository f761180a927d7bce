/**
 * RecoverTask never trusts driver_state (issue 10): on the real plugin socket, crafted states
 * that name a directory outside the task's own, a foreign live process, or a cgroup that is not
 * the task's are refused, and nothing is removed or killed; a legitimate running task of an
 * earlier plugin process is still recovered (its pids verified) and stopped.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { taskCgroupLocation } from '../src/cgroup/placement.js';
import { createTaskCgroup, type TaskCgroup } from '../src/cgroup/task-cgroup.js';
import { releaseCgroup } from '../src/driver/task-cgroup.js';
import { isRunning, processStartTime } from '../src/host/proc.js';
import { busyboxPath } from './support/nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, stateKey, taskSandbox, type TaskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;
const CGROUP_VERSION = existsSync('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : 'v1';
const FIX = "fix: check that only root can write the Nomad client's data_dir, where Nomad keeps driver_state; Nomad starts the task again";

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Alive and not a zombie (a task's init is reaped by the host's init, whenever that gets to it). */
const alive = (pid: number) => isRunning(pid);

/** A process of nobody's task, with its pid and start time. */
async function foreignSleep(): Promise<{ child: ChildProcess; pid: number; start: number }> {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  cleanups.push(() => child.kill('SIGKILL'));
  const pid = child.pid as number;
  for (let i = 0; i < 100 && processStartTime(pid) === undefined; i += 1) await new Promise((r) => setTimeout(r, 20));
  return { child, pid, start: processStartTime(pid) as number };
}

/** A pid that was just used and is free now. */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim());
}

/** A driver_state as plugin versions with record version 2 wrote it, for `task`. */
function v2State(sandbox: TaskSandbox, task: { id: string; alloc_id: string }, fields: Record<string, unknown>): Buffer {
  const key = stateKey(task.id);
  const pid = deadPid();
  return Buffer.from(
    JSON.stringify({
      version: 2,
      taskId: task.id,
      runtime: 'bwrap',
      key,
      stateDir: join(sandbox.stateDir, 'tasks', key),
      gcRootKey: key,
      viewKey: '0123456789abcdef0123456789abcdef',
      etcKey: 'fedcba9876543210fedcba9876543210',
      pid,
      pidStartTime: 1,
      initPid: pid,
      initStartTime: 1,
      startedAt: new Date().toISOString(),
      cgroup: { version: CGROUP_VERSION, root: '/sys/fs/cgroup', path: `nomad-driver-nix/${key}` },
      oomKillsBefore: 0,
      user: { name: 'nobody', uid: 65534, gid: 65534 },
      capabilities: [],
      argv: ['/bin/sh'],
      cwd: '/local',
      plan: { ops: [] },
      ...fields,
    }),
  );
}

describe('RecoverTask with a crafted driver_state', { skip: isRoot ? false : 'needs root', timeout: 180_000 }, () => {
  let sandbox: TaskSandbox;
  let plugin: RunningPlugin;
  const recover = (task: ReturnType<typeof sandboxTask>, driverState: Buffer, config: Record<string, unknown> = {}) =>
    call(plugin.clients.driver, 'RecoverTask', {
      task_id: task.id,
      handle: { version: 1, config: { ...task, ...config, msgpack_driver_config: Buffer.alloc(0) }, state: 'RUNNING', driver_state: driverState },
    });

  it('starts a plugin', async () => {
    sandbox = taskSandbox();
    cleanups.push(() => sandbox.remove());
    plugin = await startPlugin();
    cleanups.push(() => plugin.kill('SIGKILL'));
    await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox) });
  });

  it("a stateDir outside the task's own dir under state_dir is refused, and nothing there is removed", async () => {
    const canary = mkdtempSync('/var/lib/nix-canary-');
    cleanups.push(() => rmSync(canary, { recursive: true, force: true }));
    writeFileSync(join(canary, 'precious'), 'keep me');
    const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', []);
    const derived = join(sandbox.stateDir, 'tasks', stateKey(task.id));
    await assert.rejects(recover(task, v2State(sandbox, task, { stateDir: canary })), {
      details: `failed to recover task: driver_state field stateDir "${canary}" is not the task's dir ${derived} under the configured state_dir; ${FIX}`,
    });
    assert.equal(readFileSync(join(canary, 'precious'), 'utf8'), 'keep me');
  });

  for (const runtime of ['bwrap', 'runc'] as const) {
    it(`${runtime}: the pid and start time of a foreign live process are refused; it is neither adopted nor killed`, async () => {
      const sleep = await foreignSleep();
      const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', []);
      const state = v2State(sandbox, task, { runtime, pid: sleep.pid, pidStartTime: sleep.start, initPid: sleep.pid, initStartTime: sleep.start });
      const statusFile = join(sandbox.stateDir, 'tasks', stateKey(task.id), runtime === 'bwrap' ? 'bwrap-status.json' : 'exit.json');
      const what =
        runtime === 'bwrap'
          ? `its bubblewrap process ${sleep.pid} is gone (or is not this task's bwrap)`
          : `its runc monitor ${sleep.pid} is gone (or is not this task's monitor)`;
      await assert.rejects(recover(task, state), {
        details: `failed to recover task: ${what} and recorded no exit status in ${statusFile}; fix: check the task's logs (nomad alloc logs -stderr) for why it ended while the plugin was down; Nomad starts it again`,
      });
      await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(alive(sleep.pid), true, 'the foreign process lives');
    });
  }

  it("a cgroup that is not the task's own is refused; its processes live and it stays", async () => {
    const sleep = await foreignSleep();
    const path = `nix-test-foreign-${process.pid}`;
    const cgroup: TaskCgroup = await createTaskCgroup(taskCgroupLocation({ version: CGROUP_VERSION, path }));
    cleanups.push(() => releaseCgroup(cgroup).catch(() => undefined));
    await cgroup.addProcess(sleep.pid);
    const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', []);
    const location = { version: CGROUP_VERSION, root: '/sys/fs/cgroup', path };
    await assert.rejects(recover(task, v2State(sandbox, task, { cgroup: location })), {
      details: `failed to recover task: driver_state field cgroup ${JSON.stringify(JSON.stringify(location))} is neither nomad-driver-nix/${stateKey(task.id)} nor Nomad's cgroup of the task (…/${task.alloc_id}.main${CGROUP_VERSION === 'v2' ? '.scope' : ''}) (not a cgroup of this task); ${FIX}`,
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(alive(sleep.pid), true, 'the process in that cgroup lives');
    assert.deepEqual(await cgroup.processes(), [sleep.pid]);
  });

  it('a record of another Nomad node is refused', async () => {
    const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', []);
    const v2 = JSON.parse(v2State(sandbox, task, {}).toString('utf8')) as Record<string, unknown>;
    const { stateDir: _stored, ...rest } = v2;
    const state = Buffer.from(JSON.stringify({ ...rest, version: 3, nodeId: 'bbbbbbbb-0000-4000-8000-00000000000b' }));
    await assert.rejects(recover(task, state, { node_id: 'aaaaaaaa-0000-4000-8000-00000000000a' }), {
      details: `failed to recover task: driver_state field nodeId names Nomad node "bbbbbbbb-0000-4000-8000-00000000000b", and this task runs on node "aaaaaaaa-0000-4000-8000-00000000000a"; fix: give every Nomad client on a host its own state_dir; Nomad starts the task again`,
    });
  });

  for (const runtime of ['bwrap', 'runc'] as const) {
    it(`${runtime}: a running task of an earlier plugin process is recovered (its pids verified) and StopTask ends it`, async () => {
      const own = taskSandbox();
      cleanups.push(() => own.remove());
      const first = await startPlugin();
      cleanups.push(() => first.kill('SIGKILL'));
      await call(first.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(own, { runtime }) });
      const task = sandboxTask(own, busyboxPath(), 'bin/sh', ['-c', 'sleep 600']);
      const started = await call<unknown, { handle: { driver_state: Buffer } }>(first.clients.driver, 'StartTask', { task });
      const state = JSON.parse(Buffer.from(started.handle.driver_state).toString('utf8')) as { initPid: number; version: number };
      assert.equal(state.version, 4);
      first.kill('SIGKILL');
      await first.exited;
      const next = await startPlugin();
      cleanups.push(() => next.kill('SIGKILL'));
      await call(next.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(own, { runtime }) });
      // exec'd commands run as driver_state's user: a crafted root user is refused, the task runs on
      const asRoot = Buffer.from(
        JSON.stringify({ ...JSON.parse(Buffer.from(started.handle.driver_state).toString('utf8')), user: { name: 'root', uid: 0, gid: 0 } }),
      );
      await assert.rejects(
        call(next.clients.driver, 'RecoverTask', {
          task_id: task.id,
          handle: { version: 1, config: { ...task, msgpack_driver_config: Buffer.alloc(0) }, state: 'RUNNING', driver_state: asRoot },
        }),
        { details: `failed to recover task: driver_state field user.uid "0" is not the uid 65534 the task's init ${state.initPid} runs as; ${FIX}` },
      );
      assert.equal(alive(state.initPid), true, 'the task runs on');
      await call(next.clients.driver, 'RecoverTask', {
        task_id: task.id,
        handle: { version: 1, config: { ...task, msgpack_driver_config: Buffer.alloc(0) }, state: 'RUNNING', driver_state: started.handle.driver_state },
      });
      const inspected = await call<unknown, { task: { state: string } }>(next.clients.driver, 'InspectTask', { task_id: task.id });
      assert.equal(inspected.task.state, 'RUNNING');
      await call(next.clients.driver, 'StopTask', { task_id: task.id, timeout: { seconds: 5 }, signal: 'SIGTERM' }, 30_000);
      const waited = await call<unknown, { result: { exit_code: number } }>(next.clients.driver, 'WaitTask', { task_id: task.id }, 30_000);
      assert.equal(alive(state.initPid), false, 'the task is gone');
      assert.equal(waited.result.exit_code, 143);
      await call(next.clients.driver, 'DestroyTask', { task_id: task.id, force: true }, 30_000);
    });
  }
});

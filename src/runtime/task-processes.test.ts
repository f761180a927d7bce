/**
 * A pid read back from driver_state is signalled only when it is provably the task's own:
 * start time, the runtime's executable, a mark of the task (bwrap's status fd, the runc
 * monitor's bundle and container id) and, for the init, the task's cgroup. Real processes.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { childPids, isRunning, processStartTime, signalProcess } from '../host/proc.js';
import { findExecutable } from '../host/which.js';
import { BwrapRuntime, bwrapProcesses } from './bwrap/runtime.js';
import { initIsOurs, monitorIsOurs } from './detached-exit.js';
import { RuncRuntime } from './runc/runtime.js';
import type { RecoveryRecord } from './runtime.js';

const isRoot = process.getuid?.() === 0;
const bwrap = findExecutable('bwrap', { pathEnv: process.env.PATH ?? '' });
const children: ChildProcess[] = [];
const dirs: string[] = [];
after(() => {
  // a bwrap monitor's sandbox init (its pid namespace's pid 1, with the sleep) is its child and
  // would outlive a SIGKILL of the monitor alone: the init first, so the namespace dies with it
  for (const child of children) {
    for (const pid of childPids(child.pid as number)) signalProcess(pid, 'SIGKILL');
    child.kill('SIGKILL');
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function started(child: ChildProcess): Promise<{ pid: number; start: number }> {
  children.push(child);
  const pid = child.pid as number;
  for (let i = 0; i < 100 && processStartTime(pid) === undefined; i += 1) await new Promise((r) => setTimeout(r, 20));
  return { pid, start: processStartTime(pid) as number };
}

/** A record naming a foreign `sleep` as the task's monitor and init, with its true start time. */
async function foreignRecord(): Promise<{ record: RecoveryRecord; pid: number }> {
  const sleep = await started(spawn('sleep', ['300'], { stdio: 'ignore' }));
  const stateDir = mkdtempSync(join(tmpdir(), 'nix-proc-check-'));
  dirs.push(stateDir);
  const record: RecoveryRecord = {
    key: 'a_main_x',
    stateDir,
    inTaskCgroup: () => false,
    pid: sleep.pid,
    pidStartTime: sleep.start,
    initPid: sleep.pid,
    initStartTime: sleep.start,
    startedAt: new Date(),
  };
  return { record, pid: sleep.pid };
}

describe('task processes are verified before any signal', { skip: isRoot ? false : 'needs root' }, () => {
  it('bwrap: a foreign process with the recorded pid and start time is neither recovered nor killed', async () => {
    const { record, pid } = await foreignRecord();
    const runtime = new BwrapRuntime(bwrap ?? '/usr/bin/bwrap', undefined);
    await assert.rejects(runtime.recover(record), {
      message: `failed to recover task: its bubblewrap process ${pid} is gone (or is not this task's bwrap) and recorded no exit status in ${join(record.stateDir, 'bwrap-status.json')}; fix: check the task's logs (nomad alloc logs -stderr) for why it ended while the plugin was down; Nomad starts it again`,
    });
    runtime.killOrphan(record);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(isRunning(pid), true, 'the foreign process lives');
  });

  it('runc: a foreign process with the recorded pid and start time is neither recovered nor killed', async () => {
    const { record, pid } = await foreignRecord();
    const runtime = new RuncRuntime({
      runcPath: findExecutable('runc', { pathEnv: process.env.PATH ?? '' }) ?? 'runc',
      initPath: '/usr/bin/tini-static',
      runcRoot: join(record.stateDir, 'runc'),
      shellPath: '/bin/sh',
    });
    await assert.rejects(runtime.recover(record), {
      message: `failed to recover task: its runc monitor ${pid} is gone (or is not this task's monitor) and recorded no exit status in ${join(record.stateDir, 'exit.json')}; fix: check the task's logs (nomad alloc logs -stderr) for why it ended while the plugin was down; Nomad starts it again`,
    });
    runtime.killOrphan(record);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(isRunning(pid), true, 'the foreign process lives');
  });

  it("a real bwrap monitor is recognised by its executable and its status fd on the task's status file, and only for that task", {
    skip: bwrap === undefined ? 'no bwrap' : false,
  }, async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'nix-proc-check-'));
    dirs.push(stateDir);
    const status = openSync(join(stateDir, 'bwrap-status.json'), 'w');
    const monitor = await started(
      spawn(bwrap as string, ['--ro-bind', '/', '/', '--unshare-pid', '--json-status-fd', '3', 'sleep', '300'], {
        stdio: ['ignore', 'ignore', 'ignore', status],
      }),
    );
    closeSync(status);
    const pids = { pid: monitor.pid, pidStartTime: monitor.start, initPid: monitor.pid, initStartTime: monitor.start };
    assert.equal(monitorIsOurs(bwrapProcesses(pids, stateDir, () => true, bwrap as string)), true);
    assert.equal(monitorIsOurs(bwrapProcesses(pids, join(stateDir, 'other'), () => true, bwrap as string)), false, "another task's status file");
    assert.equal(
      monitorIsOurs(bwrapProcesses({ ...pids, pidStartTime: monitor.start + 1 }, stateDir, () => true, bwrap as string)),
      false,
      'another start time',
    );
    assert.equal(monitorIsOurs(bwrapProcesses(pids, stateDir, () => true, '/bin/sh')), false, 'another executable');
    assert.equal(initIsOurs(bwrapProcesses(pids, stateDir, () => true, bwrap as string)), true);
    assert.equal(initIsOurs(bwrapProcesses(pids, stateDir, () => false, bwrap as string)), false, "not in the task's cgroup");
  });
});

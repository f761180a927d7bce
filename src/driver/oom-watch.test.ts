import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaskCgroup } from '../cgroup/task-cgroup.js';
import type { ExitStatus, LaunchedTask } from '../runtime/runtime.js';
import { OOM_POLL_MS, oomKilledAtExit, oomKillEventMessage, watchOomKills } from './oom-watch.js';
import type { PersistedTask } from './persisted-task.js';
import { adoptTask } from './start-task.js';
import type { TaskRequest } from './task.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A running task whose cgroup's OOM-kill counter the test sets; `exit` ends it. */
function fakeTask(killsAtStart: number) {
  let kills = killsAtStart;
  let exit!: (status: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((resolve) => {
    exit = resolve;
  });
  const launched = { exited } as unknown as LaunchedTask;
  let opened = 0;
  let closed = 0;
  // the watch opens the counter once and reads it each poll; readOomKills is the exit's read
  const cgroup = {
    readOomKills: async () => kills,
    openOomKills: async () => {
      opened += 1;
      return { read: () => kills, close: () => (closed += 1) };
    },
  } as unknown as TaskCgroup;
  const persisted = { oomKillsBefore: killsAtStart } as unknown as PersistedTask;
  const request = {
    id: 'a/main/1',
    allocId: 'a',
    name: 'main',
    resources: { cpuShares: 100, memoryMb: 160, memoryMaxMb: 0, cpusetCpus: '', cpusetCgroupPath: '' },
  } as unknown as TaskRequest;
  return { launched, cgroup, persisted, request, exit, setKills: (n: number) => (kills = n), files: () => ({ opened, closed }) };
}

describe('OOM kills inside a running task (driver/oom-watch.ts)', () => {
  it('a kill of a process that is not the main one is a task event at once, and a later clean exit is not an OOM kill', async () => {
    // Nomad reuses a task's cgroup: the counter starts at 2 from an earlier run
    const task = fakeTask(2);
    const events: string[] = [];
    const handle = adoptTask(task.request, task.launched, task.persisted, task.cgroup, undefined, (m) => events.push(m));
    await sleep(OOM_POLL_MS * 1.5);
    assert.deepEqual(events, []);
    task.setKills(3);
    await sleep(OOM_POLL_MS * 2.5);
    assert.deepEqual(events, ['OOM kill: the kernel killed 1 process of the task, over its memory limit of 160 MiB; raise resources.memory (or memory_max)']);
    // supervisord, stopped by Nomad's SIGTERM, exits 0
    task.exit({ exitCode: 0, signal: 0, oomKilled: false });
    assert.deepEqual(await handle.exited, { exitCode: 0, signal: 0, oomKilled: false });
    task.setKills(5);
    await sleep(OOM_POLL_MS * 1.5);
    assert.equal(events.length, 1, 'no polling after the exit');
    assert.deepEqual(task.files(), { opened: 1, closed: 1 }, 'the counter opened once, closed at the exit');
  });

  it('the main process killed by SIGKILL while the counter grew is an OOM kill at exit', async () => {
    const task = fakeTask(0);
    const handle = adoptTask(task.request, task.launched, task.persisted, task.cgroup, undefined, () => {});
    task.setKills(1);
    task.exit({ exitCode: 137, signal: 9, oomKilled: false });
    assert.deepEqual(await handle.exited, { exitCode: 137, signal: 9, oomKilled: true });
  });

  it('oomKilledAtExit: SIGKILL and a grown counter, or the runtime’s word', () => {
    assert.equal(oomKilledAtExit({ oomKilled: false, signal: 9 }, 0, 1), true);
    assert.equal(oomKilledAtExit({ oomKilled: false, signal: 9 }, 1, 1), false);
    assert.equal(oomKilledAtExit({ oomKilled: false, signal: 0 }, 0, 4), false);
    assert.equal(oomKilledAtExit({ oomKilled: false, signal: 15 }, 0, 4), false);
    assert.equal(oomKilledAtExit({ oomKilled: false, signal: 9 }, 0, undefined), false);
    assert.equal(oomKilledAtExit({ oomKilled: true, signal: 0 }, 0, undefined), true);
  });

  it('watchOomKills reports each growth once, with the number of new kills, and skips failed reads', async () => {
    const reads = [0, 0, 2, undefined, 2, 3];
    let i = 0;
    let stop!: () => void;
    const until = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const reported: number[] = [];
    watchOomKills({
      read: () => {
        const value = reads[Math.min(i++, reads.length - 1)];
        if (i === 4) throw new Error('cgroup gone');
        return value;
      },
      since: 0,
      until,
      report: (killed) => reported.push(killed),
      periodMs: 10,
    });
    await sleep(200);
    stop();
    assert.deepEqual(reported, [2, 1]);
  });

  it('oomKillEventMessage names the number of processes and the limit', () => {
    assert.equal(
      oomKillEventMessage(3, 64 * MiB),
      'OOM kill: the kernel killed 3 processes of the task, over its memory limit of 64 MiB; raise resources.memory (or memory_max)',
    );
    assert.equal(
      oomKillEventMessage(1, undefined),
      'OOM kill: the kernel killed 1 process of the task, over its memory limit; raise resources.memory (or memory_max)',
    );
  });
});

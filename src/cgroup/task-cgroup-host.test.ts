/**
 * The task cgroup on this host's real cgroups v1, under a test-only parent
 * (/sys/fs/cgroup/<controller>/nomad-driver-nix-test-<pid>). Skipped unless we are root on a
 * v1 (legacy or hybrid) host. Leaves nothing behind: the parent dirs are removed at the end.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { detectCgroups } from './detect.js';
import { taskCgroupLocation, V1_TASK_CONTROLLERS } from './placement.js';
import { createTaskCgroup, type TaskCgroup } from './task-cgroup.js';

const ROOT = '/sys/fs/cgroup';
const PARENT = `nomad-driver-nix-test-${process.pid}`;
const MIB = 1024 * 1024;

const facts = await detectCgroups();
const skip = process.getuid?.() !== 0 ? 'needs root' : facts.version !== 'v1' ? `needs cgroups v1 (this host: ${facts.version ?? 'none'})` : false;

const cgroups: TaskCgroup[] = [];
after(async () => {
  for (const cgroup of cgroups) {
    await cgroup.kill().catch(() => undefined);
    await cgroup.remove().catch(() => undefined);
  }
  for (const controller of ['cpuset', ...V1_TASK_CONTROLLERS]) {
    try {
      rmdirSync(`${ROOT}/${controller}/${PARENT}`);
    } catch {
      // not created, or not mounted
    }
  }
});

/** A shell that waits for a line on stdin, then allocates `bytes` and says "ready". */
function allocator(bytes: number): { child: ChildProcessWithoutNullStreams; pid: number; exited: Promise<unknown[]> } {
  const script = `read line; x=$(head -c ${bytes} /dev/zero | tr '\\0' a); echo ready; sleep 30`;
  const child = spawn('/bin/sh', ['-c', script]);
  assert.ok(child.pid !== undefined);
  return { child, pid: child.pid, exited: once(child, 'exit') };
}

async function readyLine(child: ChildProcessWithoutNullStreams): Promise<void> {
  let out = '';
  for await (const chunk of child.stdout) {
    out += String(chunk);
    if (out.includes('ready')) return;
  }
  throw new Error(`the shell ended before allocating: ${out}`);
}

const text = (path: string) => readFileSync(path, 'utf8').trim();

describe('task cgroup on this host (cgroups v1)', { skip }, () => {
  it('limits, holds, measures, kills and removes a real process', async () => {
    const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v1', root: ROOT, path: `${PARENT}/a1.web` }));
    cgroups.push(cgroup);
    await cgroup.applyLimits({ cpuShares: 512, memoryLimitBytes: 64 * MIB, pidsLimit: 16 });
    assert.equal(text(`${ROOT}/memory/${PARENT}/a1.web/memory.limit_in_bytes`), String(64 * MIB));
    assert.equal(text(`${ROOT}/pids/${PARENT}/a1.web/pids.max`), '16');
    assert.equal(text(`${ROOT}/cpu/${PARENT}/a1.web/cpu.shares`), '512');
    assert.notEqual(text(`${ROOT}/cpuset/${PARENT}/a1.web/cpuset.cpus`), '', 'the cpuset cgroup inherited cpus');

    const task = allocator(4_000_000);
    await cgroup.addProcess(task.pid);
    assert.deepEqual(await cgroup.processes(), [task.pid]);
    task.child.stdin.write('go\n');
    await readyLine(task.child);

    const stats = await cgroup.readStats();
    assert.ok((stats.memory.usage ?? 0) >= 4_000_000, `usage ${stats.memory.usage}`);
    assert.ok((stats.memory.rss ?? 0) >= 4_000_000, `rss ${stats.memory.rss}`);
    assert.ok((stats.cpu.totalNs ?? 0) > 0, `cpu ${stats.cpu.totalNs}`);
    assert.deepEqual(stats.measuredMemory.slice(0, 5), ['RSS', 'Cache', 'Swap', 'Usage', 'Max Usage']);
    assert.ok(stats.measuredCpu.includes('Percent'));
    assert.equal(await cgroup.readOomKills(), 0);
    assert.equal((await cgroup.processes()).length, 2, 'the shell and its sleep');

    await cgroup.kill();
    assert.deepEqual(await task.exited, [null, 'SIGKILL']);
    await cgroup.remove();
    for (const controller of ['cpuset', ...V1_TASK_CONTROLLERS]) {
      assert.equal(existsSync(`${ROOT}/${controller}/${PARENT}/a1.web`), false, controller);
    }
  });

  it('readyJoin leaves a process outside the task in the cgroups it is in, and the join after it puts it in the task', async () => {
    const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v1', root: ROOT, path: `${PARENT}/a1.ready` }));
    cgroups.push(cgroup);
    const child = spawn('sleep', ['30']);
    assert.ok(child.pid !== undefined);
    const exited = once(child, 'exit');
    try {
      const before = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8');
      await cgroup.readyJoin(child.pid);
      assert.equal(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8'), before);
      await cgroup.addProcess(child.pid);
      assert.deepEqual(await cgroup.processes(), [child.pid]);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('counts an OOM kill', async () => {
    const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v1', root: ROOT, path: `${PARENT}/a1.oom` }));
    cgroups.push(cgroup);
    await cgroup.applyLimits({ memoryLimitBytes: 16 * MIB });
    // one process (the shell execs Python), so the kernel has exactly one victim: with the
    // shell's `head | tr` pipeline a loaded run saw it kill the shell and then tr (2 kills)
    const child = spawn('/bin/sh', ['-c', 'read line; exec /usr/bin/python3 -c "x = bytearray(60_000_000)"']);
    assert.ok(child.pid !== undefined);
    const task = { child, pid: child.pid, exited: once(child, 'exit') };
    await cgroup.addProcess(task.pid);
    task.child.stdin.write('go\n');
    let kills = await cgroup.readOomKills();
    for (let waited = 0; kills === 0 && waited < 5000; waited += 20) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      kills = await cgroup.readOomKills();
    }
    assert.equal(kills, 1);
    await cgroup.kill();
    await task.exited;
    await cgroup.remove();
  });
});

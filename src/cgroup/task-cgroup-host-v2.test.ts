/**
 * The task cgroup on a real cgroups v2 kernel, in Nomad's layout under a test-only parent
 * (/sys/fs/cgroup/nomad-driver-nix-test-<pid>.slice/share.slice/<alloc>.<task>.scope).
 * Skipped unless we are root on a v2 (unified) host: this machine kind is v1, so it runs in
 * the guest of scripts/v2-guest.sh (`scripts/v2-guest.sh run 'cd <checkout> && node --test
 * dist/src/cgroup/task-cgroup-host-v2.test.js'`). Leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { detectCgroups } from './detect.js';
import { cpuSharesToWeight } from './limits.js';
import { taskCgroupLocation } from './placement.js';
import { createTaskCgroup, type TaskCgroup } from './task-cgroup.js';

const ROOT = '/sys/fs/cgroup';
const PARENT = `nomad-driver-nix-test-${process.pid}.slice`;
const MIB = 1024 * 1024;

const facts = await detectCgroups();
const skip = process.getuid?.() !== 0 ? 'needs root' : facts.version !== 'v2' ? `needs cgroups v2 (this host: ${facts.version ?? 'none'})` : false;

const cgroups: TaskCgroup[] = [];
after(async () => {
  for (const cgroup of cgroups) {
    await cgroup.kill().catch(() => undefined);
    await cgroup.remove().catch(() => undefined);
  }
  for (const dir of [`${PARENT}/share.slice`, PARENT]) {
    try {
      rmdirSync(`${ROOT}/${dir}`);
    } catch {
      // not created
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

describe('task cgroup on this host (cgroups v2)', { skip, timeout: 600_000 }, () => {
  it('limits, holds, measures, kills and removes a real process', async () => {
    const path = `${PARENT}/share.slice/a1.web.scope`;
    const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v2', root: ROOT, path }));
    cgroups.push(cgroup);
    await cgroup.applyLimits({ cpuShares: 300, cpusetCpus: '0', memoryLimitBytes: 96 * MIB, memorySoftLimitBytes: 48 * MIB, pidsLimit: 16 });
    const dir = `${ROOT}/${path}`;
    assert.equal(text(`${dir}/cpu.weight`), String(cpuSharesToWeight(300)));
    assert.equal(text(`${dir}/cpuset.cpus`), '0');
    assert.equal(text(`${dir}/memory.max`), String(96 * MIB));
    assert.equal(text(`${dir}/memory.low`), String(48 * MIB));
    assert.equal(text(`${dir}/pids.max`), '16');

    const task = allocator(4_000_000);
    await cgroup.addProcess(task.pid);
    assert.deepEqual(await cgroup.processes(), [task.pid]);
    task.child.stdin.write('go\n');
    await readyLine(task.child);

    const stats = await cgroup.readStats();
    assert.ok((stats.memory.usage ?? 0) >= 4_000_000, `usage ${stats.memory.usage}`);
    assert.ok((stats.memory.rss ?? 0) >= 4_000_000, `rss ${stats.memory.rss}`);
    assert.ok((stats.cpu.totalNs ?? 0) > 0, `cpu ${stats.cpu.totalNs}`);
    assert.ok(stats.measuredCpu.includes('Percent'));
    assert.equal(await cgroup.readOomKills(), 0);
    assert.equal((await cgroup.processes()).length, 2, 'the shell and its sleep');

    await cgroup.kill();
    assert.deepEqual(await task.exited, [null, 'SIGKILL']);
    await cgroup.remove();
    assert.equal(existsSync(dir), false);
  });

  it('counts an OOM kill from memory.events', async () => {
    const path = `${PARENT}/share.slice/a1.oom.scope`;
    const cgroup = await createTaskCgroup(taskCgroupLocation({ version: 'v2', root: ROOT, path }));
    cgroups.push(cgroup);
    await cgroup.applyLimits({ memoryLimitBytes: 16 * MIB });
    const task = allocator(60_000_000);
    await cgroup.addProcess(task.pid);
    task.child.stdin.write('go\n');
    let kills = await cgroup.readOomKills();
    for (let waited = 0; kills === 0 && waited < 60_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      kills = await cgroup.readOomKills();
    }
    assert.equal(kills, 1);
    await cgroup.kill();
    await task.exited;
    await cgroup.remove();
  });
});

/**
 * Issue: resources. Through a real Nomad agent, on both runtimes: the task lands in the cgroup
 * Nomad made for it with its limits, a memory hog is OOM-killed and alloc status says so, a
 * busy loop shows CPU in `nomad alloc status -stats`, and a fork bomb stops at pids_limit.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;
let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

const sh = (script: string, extra = '') => `${shConfig(busybox, script)}${extra}`;

/** This host runs cgroups v1 (hybrid): Nomad's task cgroup in a controller's hierarchy. */
const v1Dir = (controller: string, allocId: string, task = 'main') => join('/sys/fs/cgroup', controller, 'nomad', `${allocId}.${task}`);
const read = (path: string) => readFileSync(path, 'utf8').trim();

interface AllocStats {
  ResourceUsage?: {
    CpuStats?: { Percent?: number; TotalTicks?: number; Measured?: string[] };
    MemoryStats?: { RSS?: number; Usage?: number; Measured?: string[] };
  };
}

for (const runtime of RUNTIMES)
  describe(`task resources through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    before(async () => {
      taskAgent = await startTaskAgent(`resources-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it("puts the task in Nomad's cgroup with its cpu and memory limits, and a busy loop shows CPU in `nomad alloc status -stats`", async () => {
      const job = runJob(
        agent,
        nixJobHcl({ id: 'busy', type: 'service', config: sh('echo started; while :; do :; done'), resources: { cpu: 300, memory: 48 } }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the busy loop to run');
      await agent.waitFor('the task to start', async () => (allocLogs(agent, alloc.ID, 'main').includes('started') ? true : undefined));
      // Nomad's v1 layout: nomad/<alloc>.<task> in cpu, memory and pids, the command inside
      assert.equal(read(join(v1Dir('memory', alloc.ID), 'memory.limit_in_bytes')), String(48 * 1024 * 1024));
      assert.equal(read(join(v1Dir('cpu', alloc.ID), 'cpu.shares')), '300');
      const procs = read(join(v1Dir('memory', alloc.ID), 'cgroup.procs'))
        .split('\n')
        .filter((p) => p !== '');
      assert.ok(
        procs.some((pid) => read(`/proc/${pid}/cmdline`).includes('while :')),
        `the command is in the task cgroup (procs ${procs.join(' ')})`,
      );
      const stats = await agent.waitFor(
        'non-zero CPU in the task stats',
        async () => {
          const s = await agent.api<AllocStats>(`/v1/client/allocation/${alloc.ID}/stats`).catch(() => undefined);
          return (s?.ResourceUsage?.CpuStats?.Percent ?? 0) > 0 ? s : undefined;
        },
        60_000,
      );
      assert.ok((stats.ResourceUsage?.MemoryStats?.RSS ?? 0) > 0 || (stats.ResourceUsage?.MemoryStats?.Usage ?? 0) > 0, JSON.stringify(stats));
      assert.ok(stats.ResourceUsage?.CpuStats?.Measured?.includes('Percent'), JSON.stringify(stats.ResourceUsage?.CpuStats));
      const cli = nomad(agent, ['alloc', 'status', '-stats', alloc.ID]);
      assert.equal(cli.status, 0, cli.stderr);
      const mhz = /(\d+)\/300 MHz/.exec(cli.stdout);
      assert.ok(mhz !== null && Number(mhz[1]) > 0, cli.stdout);
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the job to stop');
      await agent.waitFor('the task cgroup to be removed', async () => (existsSync(v1Dir('pids', alloc.ID)) ? undefined : true), 30_000);
    });

    it('a task over its memory limit is OOM-killed and alloc status says so', async () => {
      // dd's 200 MiB buffer in a 32 MiB cgroup (no swap on these machines)
      const job = runJob(
        agent,
        nixJobHcl({ id: 'hog', config: sh('echo allocating; exec dd if=/dev/zero of=/dev/null bs=200M count=1'), resources: { memory: 32 } }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the memory hog to die');
      assert.equal(alloc.ClientStatus, 'failed', eventMessages(alloc, 'main'));
      const terminated = taskState(alloc, 'main')?.Events.find((e) => e.Type === 'Terminated');
      assert.equal(terminated?.Details?.oom_killed, 'true', JSON.stringify(terminated));
      const status = nomad(agent, ['alloc', 'status', alloc.ID]);
      assert.match(
        status.stdout,
        /Exit Code: 137, Signal: 9, Exit Message: "OOM Killed: the task used more memory than its limit; raise resources.memory \(or memory_max\)"/,
        status.stdout,
      );
      assert.equal(terminated?.ExitCode, 137, "the kernel's SIGKILL, as 128 + 9");
    });

    it('a fork bomb stops at pids_limit and the host stays responsive', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'bomb',
          type: 'service',
          // the bomb in the background, then the shell becomes the sleeper (exec: no fork left to
          // lose; a `sleep` forked after the bomb filled pids.max failed, and sh exited 2)
          config: sh('echo bombing; b() { b | b & }; b & exec sleep 3600', '\n        pids_limit = 64'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the bomb to run');
      const pids = join(v1Dir('pids', alloc.ID));
      assert.equal(read(join(pids, 'pids.max')), '64');
      await agent.waitFor('the bomb to hit its limit', async () => (Number(read(join(pids, 'pids.events')).split(/\s+/)[1]) > 0 ? true : undefined), 30_000);
      assert.ok(Number(read(join(pids, 'pids.current'))) <= 64);
      // the host still answers: the agent's API and a new process
      const status = nomad(agent, ['alloc', 'status', alloc.ID], 30_000);
      assert.equal(status.status, 0, status.stderr);
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the bomb to be stopped', 120_000);
      await agent.waitFor('every bomb process gone and the cgroup removed', async () => (existsSync(pids) ? undefined : true), 60_000);
    });
  });

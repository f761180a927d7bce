/**
 * Issue: survive crashes and restarts. A real (non-dev) Nomad agent with a data_dir, on both
 * runtimes: tasks outlive a SIGKILLed plugin and a gracefully restarted agent and are
 * recovered with the same processes, their logs keep flowing, a task that exits while the
 * plugin is down reports its exit code, nothing is duplicated or orphaned, and what a task
 * Nomad forgot leaves behind is swept after orphan_grace.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { hcl, nixJobHcl, shConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, nomad, runJob, taskState } from './support/jobs.js';
import { childrenOf, isAlive, nomadBinary, NomadAgent, pluginPids } from './support/nomad-agent.js';
import { killTasksOf } from './support/leftovers.js';
import { RUNTIMES, type RuntimeName } from './support/task-agent.js';

const TASKS = Number(process.env.E2E_RECOVERY_TASKS ?? 20);

let busybox: string;
before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

/** Polls `probe` until it returns a value (for waits while no agent runs). */
async function waitUntil<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const sh = (script: string) => shConfig(busybox, script);

interface TaskRecord {
  readonly taskId: string;
  readonly initPid: number;
  readonly key: string;
}

for (const runtime of RUNTIMES)
  describe(`recovery through a non-dev Nomad agent (${runtime})`, { timeout: 1_200_000 }, () => {
    let agent: NomadAgent;
    let stateDir: string;
    let gcRootsDir: string;

    const pluginConfig = (grace: string) =>
      [
        `    state_dir    = ${hcl(stateDir)}`,
        `    gc_roots_dir = ${hcl(gcRootsDir)}`,
        '    substituters = []',
        `    runtime      = ${hcl(runtime satisfies RuntimeName)}`,
        `    orphan_grace = ${hcl(grace)}`,
      ].join('\n');

    /** The tasks the driver holds, from the records in its state dir. */
    const records = (): TaskRecord[] => {
      const dir = join(stateDir, 'tasks');
      if (!existsSync(dir)) return [];
      return readdirSync(dir).flatMap((key) => {
        try {
          const r = JSON.parse(readFileSync(join(dir, key, 'task.json'), 'utf8')) as { taskId: string; initPid: number };
          return [{ taskId: r.taskId, initPid: r.initPid, key }];
        } catch {
          return [];
        }
      });
    };
    const ourPlugin = () => pluginPids().filter((pid) => childrenOf(agent.pid).includes(pid));
    const allocs = async (job: string) => agent.api<{ ID: string; ClientStatus: string }[]>(`/v1/job/${job}/allocations`);
    const runningAllocs = async (job: string) => (await allocs(job)).filter((a) => a.ClientStatus === 'running');
    const recoveredLines = () =>
      agent
        .log()
        .split('\n')
        .filter((l) => l.includes('task recovered'));

    before(async () => {
      stateDir = mkdtempSync(`/var/lib/nix-e2e-recovery-${runtime}-`);
      gcRootsDir = mkdtempSync(`/nix/var/nix/gcroots/nix-e2e-recovery-${runtime}-`);
      agent = await NomadAgent.start({ persistent: true, pluginConfig: pluginConfig('10m') });
      await agent.nixDriver((d) => d.Healthy, 120_000);
    });

    after(async () => {
      const allocs = await agent.api<{ ID: string }[]>('/v1/allocations').catch(() => []);
      await agent.stopAllJobs().catch(() => undefined);
      await agent.stop();
      agent.cleanup();
      killTasksOf(new Set(allocs.map((a) => a.ID)));
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(gcRootsDir, { recursive: true, force: true });
    });

    it(`${TASKS} running tasks survive a SIGKILLed plugin: Nomad relaunches it and every task is recovered with the same pid, logs flowing`, async () => {
      const job = runJob(
        agent,
        nixJobHcl({ id: 'fleet', type: 'service', count: TASKS, config: sh('i=0; while true; do echo tick $i > /dev/stdout; i=$((i+1)); sleep 1; done') }),
      );
      await agent.waitFor(`${TASKS} running allocations`, async () => ((await runningAllocs(job)).length === TASKS ? true : undefined), 300_000);
      await agent.waitFor(`${TASKS} task records`, async () => (records().length === TASKS ? true : undefined), 60_000);
      const before = new Map(records().map((r) => [r.taskId, r.initPid]));
      const [plugin] = ourPlugin();
      assert.ok(plugin !== undefined, 'the agent runs our plugin');
      const recoveredBefore = recoveredLines().length;
      process.kill(plugin, 'SIGKILL');
      const killedAt = Date.now();
      const relaunchedPid = await agent.waitFor('Nomad to relaunch the plugin', async () => ourPlugin().find((p) => p !== plugin), 120_000);
      await agent.waitFor(`all ${TASKS} tasks recovered`, async () => (recoveredLines().length - recoveredBefore >= TASKS ? true : undefined), 180_000);
      // figures from the agent log's own timestamps: plugin relaunch (its first line) to the last recovery
      const stamp = (line: string) => Date.parse(/\d{4}-\d\d-\d\dT[\d:.]+Z/.exec(line)?.[0] ?? '');
      const lines = agent
        .log()
        .split('\n')
        .filter((l) => stamp(l) >= killedAt - 1000);
      const relaunched = stamp(lines.find((l) => l.includes('client.driver_mgr: plugin started') && l.includes(`pid=${relaunchedPid}`)) ?? '');
      const recovered = recoveredLines().slice(recoveredBefore).map(stamp);
      process.stdout.write(
        `# ${runtime}: ${recovered.length} of ${TASKS} tasks recovered; plugin killed → last recovered ${Math.max(...recovered) - killedAt} ms; plugin relaunched by Nomad → last recovered ${Math.max(...recovered) - relaunched} ms\n`,
      );
      const after = new Map(records().map((r) => [r.taskId, r.initPid]));
      assert.deepEqual(after, before, 'the same tasks with the same processes');
      for (const pid of after.values()) assert.ok(isAlive(pid), `task process ${pid} alive`);
      assert.equal((await runningAllocs(job)).length, TASKS);
      // logs keep flowing: the task writes into Nomad's log pipes itself (opened by name, /dev/stdout)
      const [first] = await runningAllocs(job);
      assert.ok(first !== undefined);
      const ticks = () => (allocLogs(agent, first.ID, 'main').match(/tick \d+/g) ?? []).length;
      const seen = ticks();
      await agent.waitFor('new log lines after the recovery', async () => (ticks() > seen + 1 ? true : undefined), 30_000);
      // stats flow again, from the relaunched plugin: a sample taken after the kill, with memory
      const sample = await agent.waitFor(
        'a stats sample of the recovered task',
        async () => {
          const usage = await agent
            .api<{ Tasks?: Record<string, { Timestamp: number; ResourceUsage: { MemoryStats: { RSS: number; Usage: number } } }> }>(
              `/v1/client/allocation/${first.ID}/stats`,
            )
            .catch(() => undefined);
          const task = usage?.Tasks?.main;
          return task !== undefined && task.Timestamp / 1e6 > killedAt ? task : undefined;
        },
        60_000,
      );
      assert.ok(sample.ResourceUsage.MemoryStats.RSS > 0 || sample.ResourceUsage.MemoryStats.Usage > 0, JSON.stringify(sample.ResourceUsage.MemoryStats));
    });

    it('a graceful agent restart recovers every task, none duplicated; a batch task that exited meanwhile reports exit code 5', async () => {
      const batch = runJob(agent, nixJobHcl({ id: 'five', config: sh('echo waiting; sleep 8; exit 5') }));
      await agent.waitFor(
        'the batch task to run',
        async () => (records().some((r) => r.taskId.includes('/main/')) && (await runningAllocs(batch)).length === 1 ? true : undefined),
        120_000,
      );
      const fiveRecord = await agent.waitFor('the batch task record', async () => {
        const [alloc] = await runningAllocs(batch);
        return alloc === undefined ? undefined : records().find((r) => r.taskId.startsWith(alloc.ID));
      });
      const before = new Map(records().map((r) => [r.taskId, r.initPid]));
      await agent.stop(); // graceful: Nomad kills the plugin and forgets its reattach record
      // while the agent and plugin are down, the batch task exits with 5
      await waitUntil('the batch task to exit while the plugin is down', () => (isAlive(fiveRecord.initPid) ? undefined : true), 30_000);
      const restartedAt = Date.now();
      agent = await NomadAgent.start({ persistent: true, pluginConfig: pluginConfig('10m'), restartOf: agent });
      await agent.nixDriver((d) => d.Healthy, 120_000);
      const five = await agent.waitFor(
        'the batch task to be reported dead',
        async () => {
          const [a] = await allocs(batch);
          if (a === undefined) return undefined;
          const full = await agent.api<Parameters<typeof isDead>[0]>(`/v1/allocation/${a.ID}`);
          return isDead(full, 'main') ? full : undefined;
        },
        180_000,
      );
      const terminated = taskState(five, 'main')
        ?.Events.filter((e) => e.Type === 'Terminated')
        .at(-1);
      assert.equal(terminated?.ExitCode, 5, eventMessages(five, 'main'));
      await agent.waitFor(`${TASKS} fleet tasks running again`, async () => ((await runningAllocs('fleet')).length === TASKS ? true : undefined), 180_000);
      process.stdout.write(`# ${runtime}: agent restart to ${TASKS} running ${Date.now() - restartedAt} ms\n`);
      const fleetBefore = [...before].filter(([id]) => !id.startsWith(five.ID));
      const after = new Map(records().map((r) => [r.taskId, r.initPid]));
      for (const [id, pid] of fleetBefore) assert.equal(after.get(id), pid, `task ${id} kept its process`);
      assert.equal([...after.keys()].filter((id) => !id.startsWith(five.ID)).length, TASKS, 'no duplicated task');
    });

    it('after the jobs are stopped, nothing of them is left on the host', async () => {
      await agent.stopAllJobs(120_000);
      const views = () => (existsSync(join(stateDir, 'views')) ? readdirSync(join(stateDir, 'views')) : []);
      // the last DestroyTask removes the record first, then the GC root and the shared view
      await agent.waitFor(
        'every task record, GC root and store view to be gone',
        async () => (records().length === 0 && readdirSync(gcRootsDir).length === 0 && views().length === 0 ? true : undefined),
        120_000,
      );
      assert.deepEqual(readdirSync(gcRootsDir), []);
      assert.deepEqual(views(), []);
      if (runtime === 'runc') assert.deepEqual(existsSync(join(stateDir, 'runc')) ? readdirSync(join(stateDir, 'runc')) : [], []);
    });

    it('a task Nomad forgot (client state wiped) is swept after orphan_grace, the new instance Nomad starts in its place is left alone', async () => {
      const job = runJob(agent, nixJobHcl({ id: 'lost', type: 'service', config: sh('exec sleep 3600') }));
      const old = await agent.waitFor('the task record', async () => records()[0], 120_000);
      await agent.stop();
      // the client forgets its allocations (its state DB is gone); the server still wants the
      // job, so the client starts it again as a new task and never recovers the old one
      rmSync(join(agent.workDir, 'data', 'client', 'state.db'), { force: true });
      assert.ok(isAlive(old.initPid), 'the task outlived the agent');
      agent = await NomadAgent.start({ persistent: true, pluginConfig: pluginConfig('5s'), restartOf: agent });
      await agent.nixDriver((d) => d.Healthy, 120_000);
      const newInstance = async () => records().find((r) => r.taskId !== old.taskId);
      // Nomad 1.11 sometimes never restarts the allocation in place: the server still has its
      // task as running, and the client's new task runner then waits at the lifecycle gate for
      // good (a goroutine dump shows TaskRunner.Run parked on its start condition, before Task
      // Setup, before any call to the driver). Stopping that allocation makes the scheduler place
      // a replacement, which the client starts normally: the sweep's behaviour under test is the
      // same either way (the old task is forgotten; the new instance must survive).
      let fresh = await agent.waitFor('Nomad to start the job again', newInstance, 45_000).catch(() => undefined);
      if (fresh === undefined) {
        const [stuck] = await allocs(job);
        if (stuck !== undefined) nomad(agent, ['alloc', 'stop', '-detach', stuck.ID]);
        fresh = await agent.waitFor('Nomad to start a replacement of the stuck allocation', newInstance, 120_000);
      }
      await agent.waitFor(
        'the sweep to remove the forgotten task',
        async () => (records().some((r) => r.key === old.key) || isAlive(old.initPid) ? undefined : true),
        60_000,
      );
      assert.match(agent.log(), /removed what forgotten tasks left behind/);
      assert.deepEqual(readdirSync(gcRootsDir), [fresh.key], 'only the new instance keeps a GC root');
      assert.ok(isAlive(fresh.initPid), 'the new instance (in the same Nomad cgroup, when Nomad restarted the allocation in place) survives the sweep');
      assert.equal((await runningAllocs(job)).length, 1);
    });
  });

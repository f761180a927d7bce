/**
 * Issue 10 (items 5 and 6): two Nomad clients on one host with the DEFAULT state_dir and
 * gc_roots_dir must not take each other's tasks for orphans. Two `nomad agent -dev` (two nodes,
 * two plugin instances) with a short orphan_grace, on both runtimes: client A runs a task,
 * then client B starts and runs one; B's orphan sweep (and A's, after its plugin is killed and
 * relaunched by Nomad) runs and leaves the other client's task, GC root and shared store view
 * alone; both tasks keep running; stopping B's job leaves the store view A's task still uses.
 * And an agent whose plugin config names a dangerous state_dir or gc_roots_dir does not start.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../../test/support/nix-fixtures.js';
import { hcl, nixJobHcl, shConfig } from '../support/job-hcl.js';
import { runJob } from '../support/jobs.js';
import { killTasksOf } from '../support/leftovers.js';
import { childrenOf, isAlive, nomadBinary, NomadAgent, pluginPids } from '../support/nomad-agent.js';
import { RUNTIMES, type RuntimeName } from '../support/task-agent.js';

/** The plugin's defaults (src/config/plugin-config.ts), which this test must share between the clients. */
const DEFAULT_STATE_DIR = '/var/lib/nomad-driver-nix';
const DEFAULT_GC_ROOTS_DIR = '/nix/var/nix/gcroots/nomad-driver-nix';
const GRACE = '5s';

interface TaskRecord {
  readonly taskId: string;
  readonly key: string;
  readonly initPid: number;
  readonly viewKey: string;
}

/** The task records in the shared default state_dir whose task id starts with `allocId`. */
function recordOf(allocId: string): TaskRecord | undefined {
  const dir = join(DEFAULT_STATE_DIR, 'tasks');
  if (!existsSync(dir)) return undefined;
  for (const key of readdirSync(dir)) {
    try {
      const r = JSON.parse(readFileSync(join(dir, key, 'task.json'), 'utf8')) as TaskRecord;
      if (r.taskId.startsWith(`${allocId}/`)) return { taskId: r.taskId, key, initPid: r.initPid, viewKey: r.viewKey };
    } catch {
      // a start in progress
    }
  }
  return undefined;
}

let busybox: string;
const createdDefaults: string[] = [];
before(() => {
  nomadBinary();
  busybox = busyboxPath();
  for (const dir of [DEFAULT_STATE_DIR, DEFAULT_GC_ROOTS_DIR]) if (!existsSync(dir)) createdDefaults.push(dir);
});
after(() => {
  // only what this test created: a host that had the default dirs before keeps them
  for (const dir of createdDefaults) rmSync(dir, { recursive: true, force: true });
});

for (const runtime of RUNTIMES)
  describe(`two Nomad clients sharing the default state_dir (${runtime})`, { timeout: 900_000 }, () => {
    const agents: NomadAgent[] = [];
    const pluginConfig = [`    runtime      = ${hcl(runtime satisfies RuntimeName)}`, '    substituters = []', `    orphan_grace = ${hcl(GRACE)}`].join('\n');
    const job = (id: string) => nixJobHcl({ id, type: 'service', config: shConfig(busybox, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done') });
    const runningAlloc = async (agent: NomadAgent, jobId: string) =>
      agent.waitFor(
        `a running allocation of ${jobId}`,
        async () => (await agent.api<{ ID: string; ClientStatus: string }[]>(`/v1/job/${jobId}/allocations`)).find((a) => a.ClientStatus === 'running')?.ID,
        300_000,
      );
    /** Waits for an orphan sweep of the plugin (any version's log line) logged after `since` characters of the agent's log. */
    const sweepRan = (agent: NomadAgent, since: number) =>
      agent.waitFor(
        `an orphan sweep of the plugin of ${agent.address}`,
        async () =>
          /orphan sweep left an entry|orphan sweep found nothing|removed what forgotten tasks left behind/.test(agent.log().slice(since)) ? true : undefined,
        120_000,
      );
    const leftLine = (agent: NomadAgent, key: string) =>
      agent
        .log()
        .split('\n')
        .some((l) => l.includes('orphan sweep left an entry that is not provably this node') && l.includes(join(DEFAULT_STATE_DIR, 'tasks', key)));

    after(async () => {
      const allocs = new Set<string>();
      for (const agent of agents) {
        const mine = (await agent.api<{ ID: string }[]>('/v1/allocations').catch(() => [])).map((a) => a.ID);
        for (const id of mine) allocs.add(id);
        await agent.stopAllJobs().catch(() => undefined);
        // DestroyTask removes the task's state from the shared dir: wait for it before the agent goes
        await agent
          .waitFor('the stopped tasks to be destroyed', async () => (mine.every((id) => recordOf(id) === undefined) ? true : undefined), 60_000)
          .catch(() => undefined);
        await agent.stop();
        agent.cleanup();
      }
      killTasksOf(allocs);
    });

    it("neither client sweeps the other's task after the grace; both keep running", async () => {
      const a = await NomadAgent.start({ pluginConfig });
      agents.push(a);
      await a.nixDriver((d) => d.Healthy, 120_000);
      runJob(a, job('on-a'));
      const allocA = await runningAlloc(a, 'on-a');
      const taskA = await a.waitFor("client A's task record", async () => recordOf(allocA), 60_000);

      const b = await NomadAgent.start({ pluginConfig });
      agents.push(b);
      await b.nixDriver((d) => d.Healthy, 120_000);
      runJob(b, job('on-b'));
      const allocB = await runningAlloc(b, 'on-b');
      const taskB = await b.waitFor("client B's task record", async () => recordOf(allocB), 60_000);
      // B's plugin is past its grace and knows its node (from its StartTask): its sweep ran and left A's task
      await sweepRan(b, 0);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.equal(isAlive(taskA.initPid), true, "client A's task runs after client B's sweep");
      assert.equal(leftLine(b, taskA.key), true, "client B logged that it left client A's task");

      // A's plugin relaunched by Nomad: it recovers A's task and, after the grace, sweeps again
      const ourPlugin = () => pluginPids().filter((pid) => childrenOf(a.pid).includes(pid));
      const [pluginA] = ourPlugin();
      assert.ok(pluginA !== undefined, 'client A runs our plugin');
      const logged = a.log().length;
      process.kill(pluginA, 'SIGKILL');
      await a.waitFor("Nomad to relaunch client A's plugin", async () => ourPlugin().find((p) => p !== pluginA), 120_000);
      await sweepRan(a, logged);
      assert.equal(leftLine(a, taskB.key), true, "client A logged that it left client B's task");

      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(isAlive(taskA.initPid), true, "client A's task runs");
      assert.equal(isAlive(taskB.initPid), true, "client B's task runs");
      for (const [agent, jobId, allocId] of [
        [a, 'on-a', allocA],
        [b, 'on-b', allocB],
      ] as const) {
        const allocs = await agent.api<{ ID: string; ClientStatus: string }[]>(`/v1/job/${jobId}/allocations`);
        assert.deepEqual(
          allocs.map((x) => [x.ID, x.ClientStatus]),
          [[allocId, 'running']],
        );
      }
      assert.deepEqual(
        readdirSync(DEFAULT_GC_ROOTS_DIR)
          .filter((k) => k === taskA.key || k === taskB.key)
          .sort(),
        [taskA.key, taskB.key].sort(),
      );
      assert.doesNotMatch(a.log() + b.log(), /removed what forgotten tasks left behind/);

      // the same closure: one store view, used by both clients; B's stop leaves it for A
      assert.equal(taskA.viewKey, taskB.viewKey);
      await b.stopAllJobs(120_000);
      await b.waitFor("client B's task record to be gone", async () => (recordOf(allocB) === undefined ? true : undefined), 60_000);
      assert.equal(existsSync(join(DEFAULT_STATE_DIR, 'views', taskA.viewKey)), true, "the store view A's task uses is still there");
      assert.equal(isAlive(taskA.initPid), true, "client A's task runs");
    });
  });

describe('dangerous plugin directories stop the agent at start', { timeout: 300_000 }, () => {
  const agents: NomadAgent[] = [];
  after(() => {
    for (const agent of agents) agent.cleanup();
  });

  for (const [field, value, cause, fix] of [
    [
      'state_dir',
      '/',
      '"/" is a system directory; the driver removes entries below state_dir',
      'set state_dir to a directory of its own such as "/var/lib/nomad-driver-nix"',
    ],
    [
      'gc_roots_dir',
      '/nix/var/nix/gcroots',
      '"/nix/var/nix/gcroots" is a system directory; the driver removes entries below gc_roots_dir',
      'set gc_roots_dir to a directory of its own such as "/nix/var/nix/gcroots/nomad-driver-nix"',
    ],
  ] as const) {
    it(`${field} = ${JSON.stringify(value)} is refused with a message naming the field, the value and the fix`, async () => {
      const agent = await NomadAgent.start({ pluginConfig: `    ${field} = ${hcl(value)}` });
      agents.push(agent);
      const code = await agent.waitForExit(30_000);
      assert.notEqual(code, undefined, `agent kept running with ${field} = ${JSON.stringify(value)}\n${agent.logTail()}`);
      assert.ok(agent.log().includes(`field "${field}": ${cause}; fix: ${fix} in the client's plugin "nix" { config { ... } } block`), agent.logTail());
    });
  }
});

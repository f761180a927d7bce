/**
 * Issue: script checks. Nomad 1.11 runs `check { type = "script" }` only for services with
 * `provider = "consul"` (e2e/exec.test.ts pins down that it refuses them for provider =
 * "nomad"), so here a real Consul agent (built by e2e/build-consul.sh) runs beside the Nomad
 * agent, once per runtime. Nomad runs each check's command inside the task through the
 * driver's ExecTask and reports the result to Consul as a TTL check: a script that finds a
 * file only the task has makes its service healthy, one that exits 2 makes its service
 * critical. Stopping the job deregisters both and leaves nothing of the task behind.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { consulBinary, ConsulAgent, type ConsulCheck } from './support/consul-agent.js';
import { hcl, hclList, nixJobHcl, shConfig } from './support/job-hcl.js';
import { eventMessages, isDead, isRunning, nomad, runJob, waitForAlloc } from './support/jobs.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let busybox: string;

before(() => {
  nomadBinary();
  consulBinary();
  busybox = busyboxPath();
});

const sh = (script: string) => shConfig(busybox, script);

/** A consul service of the task with one script check running `sh -c <script>`. */
const scriptCheckedService = (name: string, script: string) => `      service {
        provider = "consul"
        name     = ${hcl(name)}
        check {
          type     = "script"
          name     = ${hcl(`${name}-script`)}
          command  = "sh"
          args     = ${hclList(['-c', script])}
          interval = "2s"
          timeout  = "2s"
        }
      }
`;

const describeChecks = (checks: readonly ConsulCheck[]) => checks.map((c) => `${c.Name} [${c.Type}] ${c.Status}: ${c.Output.trim()}`).join('\n');

for (const runtime of RUNTIMES)
  describe(`script checks through Nomad and Consul (${runtime})`, { timeout: 600_000 }, () => {
    let consul: ConsulAgent | undefined;
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;

    before(async () => {
      consul = await ConsulAgent.start();
      taskAgent = await startTaskAgent(`checks-${runtime}`, { runtime, consulAddress: consul.httpAddress });
      ({ agent } = taskAgent);
      const { driver } = await agent.nixDriver((d) => d.Healthy);
      assert.equal(driver.Attributes?.['driver.nix.runtime'], runtime, 'the agent runs the runtime under test');
      // Nomad places consul services only on nodes that fingerprinted a Consul
      const version = await agent.waitFor('the node to fingerprint consul', async () => {
        const { node } = await agent.nixDriver();
        return (node.Attributes as Record<string, string> | undefined)?.['consul.version'];
      });
      assert.match(version, /^1\.\d+\.\d+/);
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      await consul?.stop();
      consul?.cleanup();
      consul = undefined;
    });

    it('a script finding /local/ok makes its service healthy; a script exiting 2 makes its service critical; stop deregisters both and leaves nothing', async () => {
      assert.ok(consul !== undefined && taskAgent !== undefined);
      // the check has to run in the task: the host has no /local/ok
      assert.equal(existsSync('/local/ok'), false);
      const ok = `checked-ok-${runtime}`;
      const failing = `checked-failing-${runtime}`;
      const job = runJob(
        agent,
        nixJobHcl({
          id: `script-checks-${runtime}`,
          type: 'service',
          config: sh('echo ready > /local/ok && exec sleep 1000000'),
          taskExtra:
            scriptCheckedService(ok, 'test -f /local/ok && echo "found /local/ok as uid $(id -u)"') +
            scriptCheckedService(failing, 'echo failing on purpose; exit 2'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');

      const consulAgent = consul;
      const [okCheck, failingCheck] = await consulAgent
        .waitFor(
          'consul to report the ok check passing and the failing one critical, from their scripts',
          async () => {
            const [okChecks, failingChecks] = [await consulAgent.checks(ok), await consulAgent.checks(failing)];
            const okCheck = okChecks.find((c) => c.Name === `${ok}-script`);
            const failingCheck = failingChecks.find((c) => c.Name === `${failing}-script`);
            // a TTL check starts critical: wait for the output of a script run
            if (okCheck?.Status !== 'passing' || failingCheck?.Status !== 'critical' || !/failing on purpose/.test(failingCheck.Output)) return undefined;
            return [okCheck, failingCheck] as const;
          },
          60_000,
        )
        .catch(async (error: unknown) => {
          const checks = [...(await consulAgent.checks(ok).catch(() => [])), ...(await consulAgent.checks(failing).catch(() => []))];
          throw new Error(`${String(error)}\nchecks:\n${describeChecks(checks)}\ntask events:\n${eventMessages(alloc, 'main')}`);
        });
      // Nomad runs script checks itself and reports them to Consul as TTL checks
      assert.equal(okCheck.Type, 'ttl');
      assert.equal(okCheck.ServiceName, ok);
      assert.match(okCheck.Output, /found \/local\/ok as uid 65534/, 'the script ran in the task, as its user');
      assert.equal(failingCheck.ServiceName, failing);
      assert.match(failingCheck.Output, /failing on purpose/);

      // the ok service stays healthy across further runs (a run every 2 s)
      await new Promise((r) => setTimeout(r, 5_000));
      assert.deepEqual(
        (await consulAgent.checks(ok)).filter((c) => c.Name === `${ok}-script`).map((c) => c.Status),
        ['passing'],
      );
      assert.deepEqual(
        (await consulAgent.checks(failing)).filter((c) => c.Name === `${failing}-script`).map((c) => c.Status),
        ['critical'],
      );

      // -detach: the job's deployment never turns healthy (one of its checks is critical), so
      // a monitored stop would report the cancelled deployment with exit 1
      const stopped = nomad(agent, ['job', 'stop', '-detach', job]);
      assert.equal(stopped.status, 0, stopped.stdout + stopped.stderr);
      await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the service to stop');
      await consulAgent.waitFor(
        'nomad to deregister both services',
        async () => {
          const services = await consulAgent.services();
          return services.includes(ok) || services.includes(failing) ? undefined : true;
        },
        30_000,
      );
      assert.deepEqual([...(await consulAgent.checks(ok)), ...(await consulAgent.checks(failing))], []);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
    });
  });

/**
 * Issue 13 (real programs): Redis through a real Nomad agent, once per runtime, from a genuine
 * closure of Debian's build (test/support/debian-closure.ts): `redis-server` persisting to
 * `/alloc/data` (append-only file), registered as a Nomad `service` (`provider = "nomad"`)
 * whose TCP health check Nomad's client runs and passes; a poststart `redis-cli` task of the
 * group counts its runs in Redis, and the count goes on after `nomad alloc restart -all-tasks`
 * (the server reloaded its append-only file).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildDebianClosure, type DebianClosure } from '../../test/support/debian-closure.js';
import { nixJobHcl, storeConfig } from '../support/job-hcl.js';
import { allocLogs, isDead, isRunning, nomad, runJob, waitForAlloc, waitForAllocId } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';
import { startLatency } from './start-latency.js';

/** Redis's closure: `bin/redis-server`, `bin/redis-cli`, dash as `bin/sh` and coreutils' `sleep` (the client's wait loop). */
export function redisClosure(): DebianClosure {
  return buildDebianClosure({
    name: 'redis',
    programs: [
      { from: '/usr/bin/redis-server', to: 'bin/redis-server' },
      { from: '/usr/bin/redis-cli', to: 'bin/redis-cli' },
      { from: '/bin/dash', to: 'bin/sh' },
      { from: '/bin/sleep', to: 'bin/sleep' },
    ],
  });
}

let redis: DebianClosure;

before(() => {
  nomadBinary();
  redis = redisClosure();
});

/** A Nomad native service check's state (GET /v1/allocation/:id/checks). */
interface CheckResult {
  readonly Check: string;
  readonly Mode: string;
  readonly Status: string;
  readonly Output: string;
  readonly Service: string;
}

/** Nomad interpolates `${NOMAD_…}` in the task's args. */
const nomadVar = (name: string) => `\${${name}}`;

const serverArgs = ['--bind', nomadVar('NOMAD_IP_redis'), '--port', nomadVar('NOMAD_PORT_redis'), '--dir', '/alloc/data', '--appendonly', 'yes', '--save', ''];

const clientScript =
  'set -e; cli() { redis-cli -h "$NOMAD_IP_redis" -p "$NOMAD_PORT_redis" "$@"; }; ' +
  'i=0; until cli PING >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 120 ] || exit 3; sleep 0.5; done; ' +
  'cli INCR starts; cli CONFIG GET dir; cli CONFIG GET appendonly';

for (const runtime of RUNTIMES)
  describe(`Redis through Nomad (${runtime})`, { timeout: 900_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;

    before(async () => {
      taskAgent = await startTaskAgent(`redis-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    const leftovers = (allocId: string) => {
      assert.ok(taskAgent !== undefined);
      return waitForNoLeftovers(taskAgent, allocId);
    };

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    const clientOutput = async (allocId: string, lines: number) =>
      agent
        .waitFor(
          `the client's ${lines} lines`,
          async () => {
            const out = allocLogs(agent, allocId, 'client');
            return out.split('\n').length - 1 >= lines ? out : undefined;
          },
          120_000,
        )
        .catch(
          () => `${allocLogs(agent, allocId, 'client')}\nstderr: ${allocLogs(agent, allocId, 'client', true)}\nserver: ${allocLogs(agent, allocId, 'main')}`,
        );

    /** The allocation's checks once one of them passes. */
    const passingChecks = (allocId: string) =>
      agent.waitFor(
        'the TCP check to pass',
        async () => {
          const checks = Object.values(await agent.api<Record<string, CheckResult>>(`/v1/allocation/${allocId}/checks`));
          return checks.some((c) => c.Status === 'success') ? checks : undefined;
        },
        60_000,
      );

    it('redis-server persists to /alloc/data, its Nomad service TCP check passes, and the data survives `nomad alloc restart`', async () => {
      const jobHcl = nixJobHcl({
        id: 'redis',
        type: 'service',
        groupExtra: '    network {\n      port "redis" {}\n    }\n',
        resources: { cpu: 200, memory: 128 },
        taskExtra: [
          '      service {',
          '        provider = "nomad"',
          `        name     = "redis-${runtime}"`,
          '        port     = "redis"',
          '        check {',
          '          name     = "redis-tcp"',
          '          type     = "tcp"',
          '          interval = "1s"',
          '          timeout  = "2s"',
          '        }',
          '      }',
        ].join('\n'),
        config: storeConfig(redis.path, 'bin/redis-server', serverArgs),
        extraTasks: [
          {
            name: 'client',
            config: storeConfig(redis.path, 'bin/sh', ['-c', clientScript]),
            taskExtra: '      lifecycle {\n        hook = "poststart"\n      }',
          },
        ],
      });
      const job = runJob(agent, jobHcl);
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'redis to run', 300_000);
      startLatency(`redis (${runtime}) cold`, alloc, 'main');
      assert.equal(await clientOutput(alloc.ID, 5), '1\ndir\n/alloc/data\nappendonly\nyes\n');
      const checks = await passingChecks(alloc.ID);
      assert.deepEqual(
        checks.map((c) => ({ Check: c.Check, Mode: c.Mode, Status: c.Status, Output: c.Output, Service: c.Service })),
        [{ Check: 'redis-tcp', Mode: 'healthiness', Status: 'success', Output: 'nomad: tcp ok', Service: `redis-${runtime}` }],
      );

      const restart = nomad(agent, ['alloc', 'restart', '-all-tasks', alloc.ID]);
      assert.equal(restart.status, 0, restart.stderr);
      assert.equal(await clientOutput(alloc.ID, 10), '1\ndir\n/alloc/data\nappendonly\nyes\n2\ndir\n/alloc/data\nappendonly\nyes\n', 'the count went on');
      const serverLog = allocLogs(agent, alloc.ID, 'main');
      assert.match(serverLog, /DB loaded from append only file/, 'the restarted server read its append-only file');

      nomad(agent, ['job', 'stop', job]);
      await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'redis to stop', 120_000);
      assert.deepEqual(await leftovers(alloc.ID), []);

      // a new allocation of the same closure (warm) starts over: /alloc/data is the allocation's
      runJob(agent, jobHcl);
      const again = await waitForAlloc(agent, job, (a) => a.ID !== alloc.ID && isRunning(a, 'main'), 'the second allocation to run', 300_000);
      startLatency(`redis (${runtime}) warm`, again, 'main');
      assert.equal(await clientOutput(again.ID, 5), '1\ndir\n/alloc/data\nappendonly\nyes\n');
      nomad(agent, ['job', 'stop', job]);
      await waitForAllocId(agent, again.ID, (a) => isDead(a, 'main'), 'redis to stop again', 120_000);
      assert.deepEqual(await leftovers(again.ID), []);
    });
  });

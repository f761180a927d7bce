/**
 * Issue 10, item 7: bounded input at the edge, through a real agent. A job whose config is over
 * a limit fails at once with the field, its size, the limit and the fix in `nomad alloc
 * status`, and leaves nothing behind; the message does not echo the huge value.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, storeConfig } from './support/job-hcl.js';
import { eventMessages, runJob, waitForAlloc } from './support/jobs.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { nomadBinary } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

for (const runtime of RUNTIMES)
  describe(`input limits through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`limits-${runtime}`, { runtime });
      await taskAgent.agent.nixDriver((d) => d.Healthy);
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    const cases: [string, string, string][] = [
      [
        'an argument of 200,000 characters',
        storeConfig('BUSYBOX', 'bin/sh', ['-c', 'x'.repeat(200_000)]),
        'failed to decode task config: args[1] has 200000 characters, more than the limit of 131072; fix: shorten args[1] to at most 131072 characters (pass large data as a file, e.g. an artifact or template, not inline)',
      ],
      [
        'a command of 5,000 characters',
        storeConfig('BUSYBOX', `bin/${'c'.repeat(4996)}`, []),
        'failed to start task: config.command has 5000 characters, more than the limit of 4096; fix: shorten config.command to at most 4096 characters (pass large data as a file, e.g. an artifact or template, not inline)',
      ],
    ];
    for (const [what, config, expected] of cases) {
      it(`${what} fails naming the field, its size and the limit, and leaves nothing behind`, async () => {
        assert.ok(taskAgent !== undefined);
        const job = runJob(taskAgent.agent, nixJobHcl({ id: `limit-${what.split(' ')[1]}`, config: config.replace('BUSYBOX', busybox) }));
        const alloc = await waitForAlloc(taskAgent.agent, job, (a) => a.ClientStatus === 'failed', 'the task to fail');
        const messages = eventMessages(alloc, 'main');
        assert.ok(messages.includes(expected), messages.slice(0, 2000));
        assert.ok(messages.length < 20_000, `the events do not echo the value (${messages.length} characters)`);
        assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
      });
    }
  });

/**
 * Tasks of one closure share its store view and generated /etc dir; every task holds them from
 * the start of its StartTask until DestroyTask (driver/shared-resources.ts). Through Nomad, per
 * runtime, with a never-seen closure each time (so the view is built while the tasks start):
 * (a) one group of four tasks that print a line and exit at once, several rounds: all four
 *     end `dead` with exit 0 and their line in `nomad alloc logs`, and once the job stopped
 *     nothing is left (state dirs, views, /etc dirs, GC roots, processes, cgroups);
 * (b) a job of three allocations whose command is not in the closure, submitted beside a job
 *     of three good allocations of the same store path: every good allocation runs to exit 0;
 * and a runtime that fails before the command runs (a script whose `#!` interpreter is not in
 * the closure) fails the task with the runtime's cause in `nomad alloc status`, never Started.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, storeConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, nomad, runJob, taskState, type Allocation } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

const ROUNDS = Number(process.env.SHARED_CLOSURE_ROUNDS ?? 4);
const TASKS = ['t1', 't2', 't3', 't4'];

/** A store path no task started before: a fresh view has to be built for it. */
function neverSeenClosure(label: string): string {
  return buildWithBusybox(`shared-e2e-${label}-${process.pid}-${Date.now()}`, 'mkdir -p $out/bin && ln -s $busybox/bin/sh $out/bin/sh');
}

/** Every allocation of `jobId` once there are `count` and all are terminal. */
async function terminalAllocs(agent: NomadAgent, jobId: string, count: number): Promise<Allocation[]> {
  return agent.waitFor(
    `${count} allocations of ${jobId} to end`,
    async () => {
      const stubs = await agent.api<{ ID: string; ClientStatus: string }[]>(`/v1/job/${jobId}/allocations`);
      if (stubs.length < count || stubs.some((s) => s.ClientStatus === 'pending' || s.ClientStatus === 'running')) return undefined;
      return Promise.all(stubs.map((s) => agent.api<Allocation>(`/v1/allocation/${s.ID}`)));
    },
    180_000,
  );
}

/** Entries of state_dir's views/ and etc/ (shared by tasks of one closure) once both are empty, or what is left after 30 s. */
async function sharedLeftovers(taskAgent: TaskAgent): Promise<string[]> {
  const list = () =>
    ['views', 'etc'].flatMap((dir) => {
      try {
        return readdirSync(join(taskAgent.stateDir, dir)).map((n) => `${dir}/${n}`);
      } catch {
        return [];
      }
    });
  await taskAgent.agent.waitFor('shared views and /etc dirs to go', async () => (list().length === 0 ? true : undefined), 30_000).catch(() => undefined);
  return list();
}

const exitCodeOf = (alloc: Allocation, task: string) => taskState(alloc, task)?.Events.find((e) => e.Type === 'Terminated')?.ExitCode;

before(() => {
  nomadBinary();
  busyboxPath();
});

for (const runtime of RUNTIMES)
  describe(`tasks sharing a closure (${runtime})`, { timeout: 1_800_000 }, () => {
    let taskAgent: TaskAgent;
    let agent: NomadAgent;

    before(async () => {
      taskAgent = await startTaskAgent(`shared-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
    });

    it(`four tasks of one never-seen closure exiting at once all succeed, ${ROUNDS} rounds, and nothing is left`, async () => {
      const failures: string[] = [];
      for (let round = 0; round < ROUNDS; round += 1) {
        const path = neverSeenClosure(`${runtime}-group-${round}`);
        const config = (task: string) => storeConfig(path, 'bin/sh', ['-c', `echo line-${task}; exit 0`]);
        const [first, ...rest] = TASKS as [string, ...string[]];
        const job = runJob(
          agent,
          nixJobHcl({ id: `group-${round}`, task: first, config: config(first), extraTasks: rest.map((name) => ({ name, config: config(name) })) }),
        );
        const [alloc] = await terminalAllocs(agent, job, 1);
        assert.ok(alloc !== undefined);
        for (const task of TASKS) {
          const state = taskState(alloc, task);
          const logs = allocLogs(agent, alloc.ID, task);
          if (state?.State !== 'dead' || state.Failed || exitCodeOf(alloc, task) !== 0 || logs !== `line-${task}\n`) {
            failures.push(
              `round ${round} task ${task}: ${state?.State} failed=${state?.Failed} exit=${exitCodeOf(alloc, task)} logs=${JSON.stringify(logs)} events:\n${eventMessages(alloc, task)}`,
            );
          }
        }
        nomad(agent, ['job', 'stop', '-purge', job]);
        assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), [], `round ${round}`);
        assert.deepEqual(await sharedLeftovers(taskAgent), [], `round ${round}`);
      }
      assert.deepEqual(failures, []);
    });

    it(`three allocations with a command not in the closure do not fail three good ones of the same store path, ${ROUNDS} rounds`, async () => {
      const failures: string[] = [];
      for (let round = 0; round < ROUNDS; round += 1) {
        const path = neverSeenClosure(`${runtime}-jobs-${round}`);
        const bad = nixJobHcl({ id: `bad-${round}`, count: 3, config: storeConfig(path, 'bin/missing', []) });
        const good = nixJobHcl({ id: `good-${round}`, count: 3, config: storeConfig(path, 'bin/sh', ['-c', 'echo good; sleep 1; exit 0']) });
        // which job reaches the client first alternates
        let badJob: string;
        let goodJob: string;
        if (round % 2 === 0) {
          badJob = runJob(agent, bad);
          goodJob = runJob(agent, good);
        } else {
          goodJob = runJob(agent, good);
          badJob = runJob(agent, bad);
        }
        const [badAllocs, goodAllocs] = await Promise.all([terminalAllocs(agent, badJob, 3), terminalAllocs(agent, goodJob, 3)]);
        for (const alloc of badAllocs) {
          assert.equal(alloc.ClientStatus, 'failed');
          const failed = eventMessages(alloc, 'main')
            .split('\n')
            .find((line) => line.startsWith('Driver Failure: '));
          assert.equal(
            failed,
            `Driver Failure: rpc error: code = InvalidArgument desc = failed to validate task config: command "bin/missing" (${path}/bin/missing) is not an executable file; fix: check the program's name in ${path}`,
          );
        }
        for (const alloc of goodAllocs) {
          const outcome = `${alloc.ClientStatus} exit=${exitCodeOf(alloc, 'main')} logs=${JSON.stringify(allocLogs(agent, alloc.ID, 'main'))}`;
          if (outcome !== 'complete exit=0 logs="good\\n"') failures.push(`round ${round}: ${outcome}\n${eventMessages(alloc, 'main')}`);
        }
        nomad(agent, ['job', 'stop', '-purge', badJob]);
        nomad(agent, ['job', 'stop', '-purge', goodJob]);
        for (const alloc of [...badAllocs, ...goodAllocs]) assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), [], `round ${round}`);
        assert.deepEqual(await sharedLeftovers(taskAgent), [], `round ${round}`);
      }
      assert.deepEqual(failures, []);
    });

    it('a command the runtime cannot execute (its #! interpreter is not in the closure) fails with that cause in alloc status, never Started', async () => {
      const missing = '/nix/store/00000000000000000000000000000000-missing/bin/sh';
      const path = buildWithBusybox(
        'e2e-missing-interpreter',
        `mkdir -p $out/bin && printf '#!${missing}\\necho never\\n' > $out/bin/app && chmod +x $out/bin/app`,
      );
      const job = runJob(agent, nixJobHcl({ id: 'no-interpreter', config: storeConfig(path, 'bin/app', []) }));
      const [alloc] = await terminalAllocs(agent, job, 1);
      assert.ok(alloc !== undefined);
      assert.equal(alloc.ClientStatus, 'failed');
      const events = eventMessages(alloc, 'main');
      assert.doesNotMatch(events, /^Started:/m);
      const fix = `fix: make ${missing} part of the closure (e.g. build the script with its interpreter as a dependency), or point command at a program`;
      const cause =
        runtime === 'bwrap'
          ? `failed to launch task: bubblewrap set up the sandbox but could not execute the command ${path}/bin/app (its "#!" interpreter ${missing} is not in the task's closure): bwrap exited with code 1; ${fix}`
          : `failed to launch task: the command ${path}/bin/app cannot be executed in the container: its "#!" interpreter ${missing} is not in the task's closure; ${fix}`;
      assert.equal(
        events.split('\n').find((line) => line.startsWith('Driver Failure: ')),
        `Driver Failure: rpc error: code = FailedPrecondition desc = ${cause}`,
      );
      const status = nomad(agent, ['alloc', 'status', alloc.ID]).stdout;
      assert.ok(status.includes(cause), status);
      nomad(agent, ['job', 'stop', '-purge', job]);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
      assert.deepEqual(await sharedLeftovers(taskAgent), []);
    });
  });

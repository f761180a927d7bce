/**
 * Signals reach the command, not every process of the task (issue 13: nginx's workers logged
 * "signal 1 (SIGHUP) received, ignoring" and "signal 3 (SIGQUIT) received" from the task's
 * init, on both runtimes: the driver signalled the command's whole process group). Nomad's
 * exec and docker drivers signal the task's main process; a process manager (nginx's master,
 * postmaster, supervisord) then signals its children itself, in its own order. A child of the
 * command that does not handle the signal (SIGHUP, SIGUSR1 and SIGINT kill by default) must
 * not die of a signal meant for its parent. Every path is checked: `nomad alloc signal`
 * (SignalTask), a template's `change_mode = "signal"`, and the `kill_signal` of a stop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { nixJobHcl, shConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, waitForAllocId } from './support/jobs.js';
import { nomadBinary } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let busybox: string;
before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

// the command traps USR1, HUP and TERM; its child (same process group) traps them too and says so
const PARENT_AND_CHILD = [
  '(trap "echo child got USR1" USR1; trap "echo child got HUP" HUP; trap "echo child got TERM" TERM; echo child ready; while true; do sleep 0.2; done) &',
  'trap "echo parent got USR1" USR1; trap "echo parent got HUP" HUP; trap "echo parent got TERM; kill -KILL $!; exit 0" TERM;',
  'echo parent ready; while true; do sleep 0.2; done',
].join(' ');

for (const runtime of RUNTIMES)
  describe(`signals reach the command only (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`signals-${runtime}`, { runtime });
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('`nomad alloc signal`, a template signal and the kill_signal reach the command, not its children', async () => {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const jobId = `sigtarget-${runtime}`;
      const putVar = (value: string) => assert.equal(nomad(agent, ['var', 'put', '-force', `nomad/jobs/${jobId}`, `v=${value}`]).status, 0);
      putVar('1');
      const job = runJob(
        agent,
        nixJobHcl({
          id: jobId,
          type: 'service',
          config: shConfig(busybox, PARENT_AND_CHILD),
          taskExtra: `      kill_signal  = "SIGTERM"
      kill_timeout = "20s"
      template {
        destination   = "local/v"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
        data          = "{{ with nomadVar \\"nomad/jobs/${jobId}\\" }}{{ .v }}{{ end }}"
      }
`,
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');
      const logs = () => allocLogs(agent, alloc.ID, 'main');
      const until = (what: string, pattern: RegExp) => agent.waitFor(what, async () => (pattern.test(logs()) ? true : undefined), 60_000);
      await until('both to be ready', /child ready[\s\S]*parent ready|parent ready[\s\S]*child ready/);

      assert.equal(nomad(agent, ['alloc', 'signal', '-s', 'SIGUSR1', alloc.ID, 'main']).status, 0);
      await until('the parent to get USR1', /^parent got USR1$/m);
      putVar('2');
      await until('the parent to get the template HUP', /^parent got HUP$/m);
      // the child traps between 0.2 s sleeps: a signal it got shows within a second
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      const t0 = Date.now();
      assert.equal(nomad(agent, ['alloc', 'stop', '-detach', alloc.ID]).status, 0);
      const dead = await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'the task to stop');
      assert.ok(Date.now() - t0 < 15_000, 'the parent handles its kill_signal at once');
      assert.equal(taskState(dead, 'main')?.Events.find((e) => e.Type === 'Terminated')?.ExitCode, 0, eventMessages(dead, 'main'));
      const lines = logs()
        .split('\n')
        .filter((l) => / got /.test(l));
      assert.deepEqual(lines, ['parent got USR1', 'parent got HUP', 'parent got TERM']);
      // `nomad alloc stop` replaced the service's allocation: stop the job with it
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the replacement to stop');
    });
  });

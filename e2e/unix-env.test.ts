/**
 * Issue 11 (items 4-6): what every Unix program assumes, through a real Nomad agent on both
 * runtimes. HOME, USER and LOGNAME are the task user's (HOME its home inside the task, where
 * `cd ~` works; a job's own `env` wins); /dev/stdout, /dev/stderr and /proc/self/fd/N can be
 * opened by name and every line reaches `nomad alloc logs`; /bin/sh and /usr/bin/env come from
 * the task's own closure, so glibc's system() and popen() and `#!/usr/bin/env` scripts work,
 * and `fhs_links = false` leaves them out.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath, NO_SUBSTITUTERS } from '../test/support/nix-fixtures.js';
import { hclList, nixJobHcl, shConfig, storeConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, runJob, waitForAlloc, type Allocation } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let busybox: string;
/** bin/hello: a script starting `#!/usr/bin/env sh`; busybox is in its closure, not on its PATH. */
let envScript: string;
/** bin/system-demo: a static C program calling system() and popen() (both exec /bin/sh). */
let systemDemo: string;

const SYSTEM_DEMO_C = `#include <stdio.h>
#include <stdlib.h>
int main(void) {
  int rc = system("echo via-system");
  char line[64] = "";
  FILE *p = popen("echo via-popen", "r");
  if (p != NULL && fgets(line, sizeof line, p) != NULL) fputs(line, stdout);
  int prc = p == NULL ? -1 : pclose(p);
  printf("system=%d pclose=%d\\n", rc, prc);
  return 0;
}
`;

/** A store path holding bin/<name>, compiled statically from `source` with the host's cc. */
function staticCProgram(name: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-e2e-c-'));
  try {
    writeFileSync(join(dir, 'main.c'), source);
    mkdirSync(join(dir, name, 'bin'), { recursive: true });
    execFileSync('cc', ['-static', '-O2', '-o', join(dir, name, 'bin', name), join(dir, 'main.c')]);
    return execFileSync('nix-store', [...NO_SUBSTITUTERS, '--add', join(dir, name)], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

before(() => {
  nomadBinary();
  busybox = busyboxPath();
  envScript = buildWithBusybox(
    'env-shebang',
    'mkdir -p $out/bin && printf "#!/usr/bin/env sh\\necho via-env \\$0 \\$1\\n" > $out/bin/hello && chmod +x $out/bin/hello',
  );
  systemDemo = staticCProgram('system-demo', SYSTEM_DEMO_C);
});

const sh = (script: string, more = '') => `${shConfig(busybox, script)}${more === '' ? '' : `\n${more}`}`;

/**
 * Shell text that waits until `n` tasks of the group got this far: no task of a group ends
 * while a sibling sharing its store view and /etc is still starting (those are shared by
 * every task of the same closure and user; see the report on releasing them).
 */
const barrier = (n: number) =>
  `touch /alloc/up-$NOMAD_TASK_NAME; i=0; while [ "$(ls /alloc | grep -c '^up-')" -lt ${n} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; sleep 1; `;

/** A config running `script` with the closure's sh, `store` the main output and busybox a package. */
const withBusybox = (store: string, script: string, more = '') =>
  `${storeConfig(store, 'sh', ['-c', script])}\n        packages   = ${hclList([busybox])}${more === '' ? '' : `\n${more}`}`;

for (const runtime of RUNTIMES)
  describe(`what Unix programs assume (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;

    before(async () => {
      taskAgent = await startTaskAgent(`unixenv-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    const finished = (tasks: readonly string[]) => (a: Allocation) => tasks.every((t) => isDead(a, t));

    /** A task's logs once they end in a newline after `last` (logmon may still be copying). */
    const logsOf = (allocId: string, task: string, stderr: boolean, last: RegExp) =>
      agent
        .waitFor(
          `the ${stderr ? 'stderr' : 'stdout'} of ${task} to match ${last}`,
          async () => {
            const out = allocLogs(agent, allocId, task, stderr);
            return last.test(out) ? out : undefined;
          },
          15_000,
        )
        .catch(() => allocLogs(agent, allocId, task, stderr));

    it("HOME, USER and LOGNAME are the task user's, HOME is /local (its passwd entry too) and `cd ~` works; a job's env wins", async () => {
      const script =
        barrier(3) +
        'echo "$HOME|$USER|$LOGNAME"; cd ~ && pwd && echo dotfile > .profile-test && cat ~/.profile-test; grep "^$(whoami):" /etc/passwd | busybox cut -d: -f6';
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'home',
          config: sh(script),
          extraTasks: [
            // daemon's host home (/usr/sbin) is not in the task's root
            { name: 'named', config: sh(script), taskExtra: '      user = "daemon"\n' },
            { name: 'own', config: sh(script), taskExtra: '      env {\n        HOME = "/alloc"\n        USER = "someone"\n      }\n' },
          ],
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished(['main', 'named', 'own']), 'the tasks to finish');
      assert.equal(
        alloc.ClientStatus,
        'complete',
        ['main', 'named', 'own'].map((t) => eventMessages(alloc, t) + allocLogs(agent, alloc.ID, t, true)).join('\n'),
      );
      assert.equal(await logsOf(alloc.ID, 'main', false, /^\/local\n$/m), '/local|nobody|nobody\n/local\ndotfile\n/local\n');
      assert.equal(await logsOf(alloc.ID, 'named', false, /^\/local\n$/m), '/local|daemon|daemon\n/local\ndotfile\n/local\n');
      assert.equal(await logsOf(alloc.ID, 'own', false, /^\/local\n$/m), '/alloc|someone|nobody\n/alloc\ndotfile\n/local\n');
      assert.deepEqual(await waitForNoLeftovers(taskAgent!, alloc.ID), []);
    });

    it('a task opens /dev/stdout, /dev/stderr and /proc/self/fd/1 and /2 by name, and every line reaches `nomad alloc logs`', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'bynames',
          config: sh('echo out > /dev/stdout; echo err > /dev/stderr; echo fd1 > /proc/self/fd/1; echo fd2 > /proc/self/fd/2; echo direct'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished(['main']), 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(await logsOf(alloc.ID, 'main', true, /^fd2$/m), 'err\nfd2\n');
      assert.equal(await logsOf(alloc.ID, 'main', false, /^direct$/m), 'out\nfd1\ndirect\n');
      assert.deepEqual(await waitForNoLeftovers(taskAgent!, alloc.ID), []);
    });

    it("/bin/sh and /usr/bin/env link to the closure's own: system() and popen() of a C program and an `#!/usr/bin/env sh` script work", async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'fhs',
          config: withBusybox(systemDemo, `${barrier(3)}exec system-demo`),
          extraTasks: [
            { name: 'script', config: withBusybox(envScript, `${barrier(3)}exec hello arg`) },
            { name: 'links', config: sh(`${barrier(3)}busybox readlink /bin/sh; busybox readlink /usr/bin/env; ls /; ls /bin; ls /usr; ls /usr/bin`) },
          ],
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished(['main', 'script', 'links']), 'the tasks to finish');
      assert.equal(
        alloc.ClientStatus,
        'complete',
        ['main', 'script', 'links'].map((t) => eventMessages(alloc, t) + allocLogs(agent, alloc.ID, t, true)).join('\n'),
      );
      assert.equal(await logsOf(alloc.ID, 'main', false, /^system=/m), 'via-system\nvia-popen\nsystem=0 pclose=0\n');
      assert.equal(await logsOf(alloc.ID, 'script', false, /^via-env/m), `via-env ${envScript}/bin/hello arg\n`);
      assert.equal(
        await logsOf(alloc.ID, 'links', false, /^env$/m),
        `${busybox}/bin/sh\n${busybox}/bin/env\n${['alloc', 'bin', 'dev', 'etc', 'local', 'nix', 'proc', 'secrets', 'tmp', 'usr'].join('\n')}\nsh\nbin\nenv\n`,
      );
      assert.deepEqual(await waitForNoLeftovers(taskAgent!, alloc.ID), []);
    });

    it('`fhs_links = false`: no /bin/sh or /usr/bin/env, so system() finds no shell', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'nofhs',
          config: withBusybox(systemDemo, `${barrier(2)}exec system-demo`, '        fhs_links  = false'),
          extraTasks: [
            {
              name: 'links',
              config: sh(`${barrier(2)}ls /; test -e /bin/sh || echo no /bin/sh; test -e /usr/bin/env || echo no /usr/bin/env`, '        fhs_links  = false'),
            },
          ],
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished(['main', 'links']), 'the tasks to finish');
      assert.equal(alloc.ClientStatus, 'complete', ['main', 'links'].map((t) => eventMessages(alloc, t)).join('\n'));
      // no shell: glibc's system() reports its child's exit 127, popen() fails (returns NULL)
      assert.equal(await logsOf(alloc.ID, 'main', false, /^system=/m), `system=${127 * 256} pclose=-1\n`);
      assert.equal(
        await logsOf(alloc.ID, 'links', false, /^no \/usr\/bin\/env$/m),
        'alloc\ndev\netc\nlocal\nnix\nproc\nsecrets\ntmp\nno /bin/sh\nno /usr/bin/env\n',
      );
      assert.deepEqual(await waitForNoLeftovers(taskAgent!, alloc.ID), []);
    });
  });

/**
 * Issues: run tasks, and a second runtime. `nomad job run` of `driver = "nix"` jobs through a
 * real agent, once per runtime (bubblewrap and runc, the same scenarios): closures the tests
 * build from busybox, a closure-only root, logs, exit codes, stop and signals, bridge
 * networking, and clear failures that leave nothing behind.
 */
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath, makeFlake } from '../test/support/nix-fixtures.js';
import { hcl, nixJobHcl, shConfig, storeConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, waitForAllocId, type Allocation } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { RUNTIMES, e2eFlakeDir, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;
let stateDir: string;
let busybox: string;
let app: string;

before(async () => {
  nomadBinary();
  busybox = busyboxPath();
  // a closure of two paths: app (with bin/app, a symlink to busybox like a Nix profile) + busybox
  app = buildWithBusybox(
    'app',
    'mkdir -p $out/bin $out/libexec && printf "#!$busybox/bin/sh\\nexec $busybox/bin/sh \\"\\$@\\"\\n" > $out/libexec/app && chmod +x $out/libexec/app && ln -s ../libexec/app $out/bin/app',
  );
});

const sh = (script: string) => shConfig(busybox, script);

const finished = (a: Allocation) => isDead(a, 'main');

async function noLeftovers(allocId: string): Promise<void> {
  assert.ok(taskAgent !== undefined);
  assert.deepEqual(await waitForNoLeftovers(taskAgent, allocId), []);
}

for (const runtime of RUNTIMES)
  describe(`running nix tasks through Nomad (${runtime})`, { timeout: 900_000 }, () => {
    before(async () => {
      taskAgent = await startTaskAgent(`tasks-${runtime}`, { runtime });
      ({ agent, stateDir } = taskAgent);
      const { driver } = await agent.nixDriver((d) => d.Healthy);
      assert.equal(driver.Attributes?.['driver.nix.runtime'], runtime, 'the agent runs the runtime under test');
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('a batch job exiting 0 completes, and `nomad alloc logs` shows stdout and stderr', async () => {
      const job = runJob(agent, nixJobHcl({ id: 'ok', config: sh('echo hello from nix; echo to stderr >&2; ls /nix/store; exit 0') }));
      const alloc = await waitForAlloc(agent, job, finished, 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      const stdout = allocLogs(agent, alloc.ID, 'main');
      assert.match(stdout, /^hello from nix$/m);
      assert.equal(allocLogs(agent, alloc.ID, 'main', true).trim(), 'to stderr');
      // the task's /nix/store holds its closure and nothing else
      const listed = stdout
        .split('\n')
        .slice(1)
        .filter((l) => l !== '');
      assert.deepEqual(listed, [busybox.slice('/nix/store/'.length)]);
      await noLeftovers(alloc.ID);
    });

    it('a batch job exiting 3 fails, with exit code 3 in alloc status', async () => {
      const job = runJob(agent, nixJobHcl({ id: 'three', config: sh('exit 3') }));
      const alloc = await waitForAlloc(agent, job, finished, 'the task to fail');
      assert.equal(alloc.ClientStatus, 'failed');
      const terminated = taskState(alloc, 'main')?.Events.find((e) => e.Type === 'Terminated');
      assert.equal(terminated?.ExitCode, 3, eventMessages(alloc, 'main'));
      const status = nomad(agent, ['alloc', 'status', alloc.ID]);
      assert.match(status.stdout, /Exit Code: 3/);
    });

    it('runs a command that is a symlink in a two-path closure, as the unprivileged default user', async () => {
      const job = runJob(agent, nixJobHcl({ id: 'symlink', config: storeConfig(app, 'bin/app', ['-c', 'id -u; ls /nix/store | sort; echo $PATH']) }));
      const alloc = await waitForAlloc(agent, job, finished, 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
      const [uid, ...rest] = allocLogs(agent, alloc.ID, 'main').trim().split('\n');
      assert.equal(uid, '65534');
      assert.deepEqual(rest.slice(0, 2), [app, busybox].map((p) => p.slice('/nix/store/'.length)).sort());
      assert.equal(rest[2], `${app}/bin`);
    });

    it('builds and runs a flake installable', async () => {
      const dir = e2eFlakeDir();
      try {
        const flake = makeFlake(
          dir,
          'hello',
          'mkdir -p $out/bin && printf "#!$busybox/bin/sh\\necho flake says hi\\n" > $out/bin/hello && chmod +x $out/bin/hello',
        );
        const job = runJob(agent, nixJobHcl({ id: 'flake', config: `        flake   = ${hcl(flake)}\n        command = "bin/hello"` }));
        const alloc = await waitForAlloc(agent, job, finished, 'the flake task to finish');
        assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
        assert.equal(allocLogs(agent, alloc.ID, 'main').trim(), 'flake says hi');
        assert.match(eventMessages(alloc, 'main'), /Building flake path:/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a service job: busybox httpd answers on its allocated port', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'web',
          type: 'service',
          groupExtra: '    network {\n      port "http" {}\n    }\n',
          config: sh('echo served-by-nix > /local/index.html && exec httpd -f -p ${NOMAD_PORT_http} -h /local'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'httpd to run');
      const port = alloc.AllocatedResources?.Shared?.Ports?.find((p) => p.Label === 'http')?.Value;
      assert.ok(port !== undefined);
      const body = await agent.waitFor(
        'httpd to answer',
        async () => {
          const response = await fetch(`http://127.0.0.1:${port}/index.html`).catch(() => undefined);
          return response?.ok ? response.text() : undefined;
        },
        30_000,
      );
      assert.equal(body.trim(), 'served-by-nix');
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, finished, 'the service to stop');
      await noLeftovers(alloc.ID);
    });

    it('`nomad alloc stop`: a task trapping its kill_signal gets it; one ignoring it is killed after kill_timeout', async () => {
      const trap = runJob(
        agent,
        nixJobHcl({
          id: 'trap',
          type: 'service',
          config: sh("trap 'echo got TERM; exit 0' TERM; echo ready; while true; do sleep 0.2; done"),
          taskExtra: '      kill_signal  = "SIGTERM"\n      kill_timeout = "20s"\n',
        }),
      );
      const ignore = runJob(
        agent,
        nixJobHcl({
          id: 'ignore',
          type: 'service',
          config: sh("trap '' INT TERM; echo ready; while true; do sleep 0.2; done"),
          taskExtra: '      kill_timeout = "2s"\n',
        }),
      );
      const a1 = await waitForAlloc(agent, trap, (a) => isRunning(a, 'main'), 'the trapping task to run');
      const a2 = await waitForAlloc(agent, ignore, (a) => isRunning(a, 'main'), 'the ignoring task to run');
      await agent.waitFor('both tasks to be ready', async () =>
        allocLogs(agent, a1.ID, 'main').includes('ready') && allocLogs(agent, a2.ID, 'main').includes('ready') ? true : undefined,
      );
      const t0 = Date.now();
      const stop1 = nomad(agent, ['alloc', 'stop', '-detach', a1.ID]);
      assert.equal(stop1.status, 0, stop1.stderr + stop1.stdout);
      await waitForAllocId(agent, a1.ID, (a) => isDead(a, 'main'), 'the trapping task to stop');
      assert.ok(Date.now() - t0 < 15_000, 'the trapping task should stop long before its 20 s kill_timeout');
      assert.match(allocLogs(agent, a1.ID, 'main'), /got TERM/);
      const t1 = Date.now();
      const stop2 = nomad(agent, ['alloc', 'stop', '-detach', a2.ID]);
      assert.equal(stop2.status, 0, stop2.stderr + stop2.stdout);
      const dead = await waitForAllocId(agent, a2.ID, (a) => isDead(a, 'main'), 'the ignoring task to be killed');
      assert.ok(Date.now() - t1 >= 2_000, 'killed only after kill_timeout');
      assert.ok(taskState(dead, 'main')?.Events.some((e) => e.Type === 'Killed'));
      nomad(agent, ['job', 'stop', '-purge', trap]);
      nomad(agent, ['job', 'stop', '-purge', ignore]);
      await noLeftovers(a1.ID);
      await noLeftovers(a2.ID);
    });

    it('`nomad alloc signal -s SIGUSR1` reaches the task, and `nomad alloc restart` starts it again', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'signals',
          type: 'service',
          config: sh("trap 'echo got USR1' USR1; echo started; while true; do sleep 0.2; done"),
          taskExtra: '      kill_signal = "SIGKILL"\n',
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');
      await agent.waitFor('the task to start', async () => (allocLogs(agent, alloc.ID, 'main').includes('started') ? true : undefined));
      assert.equal(nomad(agent, ['alloc', 'signal', '-s', 'SIGUSR1', alloc.ID, 'main']).status, 0);
      await agent.waitFor('the signal to arrive', async () => (allocLogs(agent, alloc.ID, 'main').includes('got USR1') ? true : undefined), 15_000);
      const restart = nomad(agent, ['alloc', 'restart', alloc.ID, 'main']);
      assert.equal(restart.status, 0, restart.stderr);
      await agent.waitFor(
        'the task to start again',
        async () => {
          const logs = allocLogs(agent, alloc.ID, 'main');
          return (logs.match(/started/g) ?? []).length >= 2 ? true : undefined;
        },
        60_000,
      );
      // the client reports task events to the servers in batches: wait for the restart's
      const after = await waitForAllocId(
        agent,
        alloc.ID,
        (a) => isRunning(a, 'main') && /Restart Signaled/.test(eventMessages(a, 'main')),
        'the restart to show in alloc status',
      );
      assert.match(eventMessages(after, 'main'), /Restart Signaled/);
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, finished, 'the job to stop');
    });

    it('reaps the children of a multi-process command', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'procs',
          config: sh('for i in 1 2 3; do (sleep 0.3; echo child $i) & done; wait; sh -c "sleep 0.1 &" ; sleep 0.5; ps -o stat,comm | grep -c "^Z" || true'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished, 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
      const out = allocLogs(agent, alloc.ID, 'main');
      assert.equal((out.match(/child \d/g) ?? []).length, 3);
      assert.match(out.trim().split('\n').pop() ?? '', /^0$/, 'no zombie processes');
    });

    it("keeps the host out of reach: no /etc/shadow, no store path outside the closure, no /nix/var, no other task's /local", async () => {
      const other = buildWithBusybox('not-in-closure', 'mkdir -p $out && echo secret > $out/file');
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'jail',
          config: sh(
            `for p in /etc/shadow ${other}/file /nix/var ${stateDir} /alloc/../../; do if cat $p >/dev/null 2>&1 || ls $p >/dev/null 2>&1; then echo "REACHABLE $p"; fi; done; ls / | tr '\\n' ' '; echo; ls /alloc`,
          ),
        }),
      );
      const alloc = await waitForAlloc(agent, job, finished, 'the task to finish');
      const out = allocLogs(agent, alloc.ID, 'main');
      assert.doesNotMatch(out, /REACHABLE \/etc\/shadow|REACHABLE \/nix|REACHABLE \/var/, out);
      // bin and usr hold only the /bin/sh and /usr/bin/env links into the closure (busybox's)
      assert.match(out, /^alloc bin dev etc local nix proc secrets tmp usr $/m);
    });

    const badConfigs: [string, string, RegExp][] = [
      [
        'both',
        `        flake = "path:/nowhere#x"\n        store_path = ${hcl(`/nix/store/${'0'.repeat(32)}-x`)}`,
        /failed to validate task config: both flake and store_path are set; fix: set exactly one of flake/,
      ],
      ['neither', '        command = "bin/sh"', /failed to validate task config: neither flake nor store_path is set/],
      ['relative', '        store_path = "nix/store/abc"', /failed to validate task config: store_path "nix\/store\/abc" is not an absolute path/],
      ['nonstore', '        store_path = "/usr/bin"', /failed to validate task config: store_path "\/usr\/bin" is not in \/nix\/store/],
      ['escape', '', /failed to validate task config: command "\.\.\/\.\.\/bin\/sh" contains "\.\.", which would escape the closure/],
    ];
    for (const [id, config, expected] of badConfigs) {
      it(`bad config (${id}) fails with a clear message and leaves nothing behind`, async () => {
        const body = id === 'escape' ? storeConfig(busybox, '../../bin/sh', []) : config;
        const job = runJob(agent, nixJobHcl({ id: `bad-${id}`, config: body }));
        const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'failed', 'the task to fail');
        assert.match(eventMessages(alloc, 'main'), expected);
        await noLeftovers(alloc.ID);
      });
    }

    it('a root task fails unless the plugin config allows root, naming the option', async () => {
      const job = runJob(agent, nixJobHcl({ id: 'bad-root', config: sh('id'), taskExtra: '      user = "root"\n' }));
      const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'failed', 'the task to fail');
      assert.match(
        eventMessages(alloc, 'main'),
        /failed to resolve task user: user "root" is root and the plugin config does not allow root tasks; fix: .*allow_root = true/,
      );
      await noLeftovers(alloc.ID);
    });

    it("bridge networking: the group's tasks share Nomad's network namespace, talk over localhost, and the mapped port reaches the task", async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'bridge',
          type: 'service',
          groupExtra: '    network {\n      mode = "bridge"\n      port "http" {\n        to = 8080\n      }\n    }\n',
          config: sh('echo served-in-bridge > /local/index.html && exec httpd -f -p 8080 -h /local'),
          extraTasks: [
            {
              name: 'client',
              config: sh(
                'until wget -q -O /local/got http://127.0.0.1:8080/index.html 2>/dev/null; do sleep 0.2; done; cat /local/got; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\\n" " "; echo; nslookup deb.debian.org >/local/dns 2>&1; echo "dns exit $?"; exec sleep 3600',
              ),
            },
          ],
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main') && isRunning(a, 'client'), 'both tasks to run');
      const logs = await agent.waitFor(
        'the client to reach the server over localhost',
        async () => {
          const out = allocLogs(agent, alloc.ID, 'client');
          return /dns exit \d+/.test(out) ? out : undefined;
        },
        60_000,
      );
      // the group's namespace: Nomad's veth (eth0) and loopback, none of the host's interfaces
      assert.equal(logs.trim().split('\n')[1]?.trim(), 'eth0 lo', logs);
      // DNS from inside the namespace, whenever the host itself resolves names (these machines
      // reach Debian's mirrors; an offline host has nothing to compare with)
      const hostResolves = await lookup('deb.debian.org').then(
        () => true,
        () => false,
      );
      if (hostResolves) assert.match(logs, /dns exit 0/, logs);
      const mapped = alloc.AllocatedResources?.Shared?.Ports?.find((p) => p.Label === 'http');
      assert.ok(mapped !== undefined);
      const body = await agent.waitFor(
        `the mapped port ${mapped.HostIP}:${mapped.Value} to answer`,
        async () => {
          const response = await fetch(`http://${mapped.HostIP}:${mapped.Value}/index.html`).catch(() => undefined);
          return response?.ok ? response.text() : undefined;
        },
        30_000,
      );
      assert.equal(body.trim(), 'served-in-bridge');
      nomad(agent, ['job', 'stop', job]);
      await waitForAlloc(agent, job, (a) => isDead(a, 'main') && isDead(a, 'client'), 'the job to stop');
      await noLeftovers(alloc.ID);
    });

    it('a missing flake attribute fails naming the attribute, leaving nothing behind', async () => {
      const dir = e2eFlakeDir();
      try {
        makeFlake(dir, 'present', 'mkdir -p $out');
        const job = runJob(agent, nixJobHcl({ id: 'bad-attr', config: `        flake = ${hcl(`path:${dir}#absent`)}` }));
        const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'failed', 'the task to fail');
        assert.match(eventMessages(alloc, 'main'), /does not provide attribute .*absent/);
        await noLeftovers(alloc.ID);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

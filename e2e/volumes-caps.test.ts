/**
 * Issue 5 (volumes and capabilities): through a real Nomad agent, once per runtime — a client
 * `host_volume` mounted read-write keeps its data across `nomad alloc restart` and for a new
 * allocation; mounted read-only it refuses writes; `cap_add` outside the plugin's `allow_caps`
 * fails clearly and leaves nothing behind; a root task has Nomad's default capabilities, and
 * none with `cap_drop = ["ALL"]`; an unprivileged task's `cap_add` is granted by runc (ambient)
 * and refused clearly by bubblewrap.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { DEFAULT_ROOT_CAPABILITIES, capabilityBit } from '../src/config/capabilities.js';
import { hcl, nixJobHcl, shConfig } from './support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, waitForAllocId } from './support/jobs.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

const sh = (script: string, more = '') => `${shConfig(busybox, script)}\n${more}`;

const hostVolume = (name: string, path: string) => `  host_volume ${hcl(name)} {\n    path      = ${hcl(path)}\n    read_only = false\n  }`;
const groupVolume = (name: string, readOnly = false) =>
  `    volume ${hcl(name)} {\n      type      = "host"\n      source    = ${hcl(name)}\n      read_only = ${readOnly}\n    }\n`;
const volumeMount = (name: string, destination: string, readOnly = false) =>
  `      volume_mount {\n        volume      = ${hcl(name)}\n        destination = ${hcl(destination)}\n        read_only   = ${readOnly}\n      }\n`;

/** The kernel's capability mask (as /proc/<pid>/status prints it) of a set of CAP_ names. */
const mask = (caps: readonly string[]) =>
  caps
    .reduce((m, c) => m | (1n << BigInt(capabilityBit(c))), 0n)
    .toString(16)
    .padStart(16, '0');

/** `Name:\tvalue` lines of /proc/self/status, as a record. */
const statusFields = (text: string) => Object.fromEntries([...text.matchAll(/^(Cap\w+|NoNewPrivs):\s*(\S+)$/gm)].map((m) => [m[1], m[2]]));

const CAP_LINES = 'grep -E "^(CapEff|CapPrm|CapAmb|CapBnd|NoNewPrivs):" /proc/self/status';

for (const runtime of RUNTIMES)
  describe(`volumes and capabilities through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;
    let volumes: string;

    /** The task's stdout once it matches `pattern` (logmon may still be copying after the task died). */
    const logsWith = (allocId: string, task: string, pattern: RegExp) =>
      agent
        .waitFor(
          `the logs of ${task} to match ${pattern}`,
          async () => {
            const out = allocLogs(agent, allocId, task);
            return pattern.test(out) ? out : undefined;
          },
          15_000,
        )
        .catch(() => allocLogs(agent, allocId, task));

    const noLeftovers = async (allocId: string) => assert.deepEqual(await waitForNoLeftovers(taskAgent!, allocId), []);

    before(async () => {
      // world-searchable (bwrap binds as the task user) and writable: tasks run as nobody
      volumes = mkdtempSync(`/var/lib/nix-e2e-volumes-${runtime}-`);
      chmodSync(volumes, 0o755);
      for (const name of ['shared', 'seeded']) {
        mkdirSync(join(volumes, name));
        chmodSync(join(volumes, name), 0o777);
      }
      writeFileSync(join(volumes, 'seeded', 'seed'), 'seeded by the operator\n', { mode: 0o644 });
      taskAgent = await startTaskAgent(`volcaps-${runtime}`, {
        runtime,
        pluginConfig: '    allow_root   = true',
        clientConfig: [hostVolume('shared', join(volumes, 'shared')), hostVolume('seeded', join(volumes, 'seeded'))].join('\n'),
      });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      if (volumes !== undefined) rmSync(volumes, { recursive: true, force: true });
    });

    it('a host volume mounted read-write keeps its data across `nomad alloc restart`, and a new allocation sees it', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'counter',
          type: 'service',
          groupExtra: groupVolume('shared'),
          taskExtra: volumeMount('shared', '/data') + '      kill_signal = "SIGKILL"\n',
          config: sh('n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo "start $n"; exec sleep 3600'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');
      await agent.waitFor('the first start', async () => (allocLogs(agent, alloc.ID, 'main').includes('start 1') ? true : undefined));
      const restart = nomad(agent, ['alloc', 'restart', alloc.ID, 'main']);
      assert.equal(restart.status, 0, restart.stderr);
      await agent.waitFor('the restarted task to count on', async () => (allocLogs(agent, alloc.ID, 'main').includes('start 2') ? true : undefined), 60_000);
      assert.equal(readFileSync(join(volumes, 'shared', 'n'), 'utf8'), '2\n', 'the data is on the host');
      nomad(agent, ['job', 'stop', job]);
      await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'the job to stop');
      await noLeftovers(alloc.ID);

      const reader = runJob(
        agent,
        nixJobHcl({
          id: 'reader',
          groupExtra: groupVolume('shared', true),
          taskExtra: volumeMount('shared', '/data', true),
          config: sh('cat /data/n; ls -ln /data/n | cut -c1-10'),
        }),
      );
      const read = await waitForAlloc(agent, reader, (a) => isDead(a, 'main'), 'the reader to finish');
      assert.equal(read.ClientStatus, 'complete', eventMessages(read, 'main') + allocLogs(agent, read.ID, 'main', true));
      assert.equal(await logsWith(read.ID, 'main', /^-/m), '2\n-rw-r--r--\n');
    });

    it('a host volume mounted read-only: the task reads it, and a write fails inside the task', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'readonly',
          groupExtra: groupVolume('seeded', true),
          taskExtra: volumeMount('seeded', '/seed', true),
          config: sh('cat /seed/seed; echo x > /seed/new || { echo WRITE-FAILED; exit 7; }; echo WROTE'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the task to finish');
      assert.equal(alloc.ClientStatus, 'failed', allocLogs(agent, alloc.ID, 'main'));
      assert.equal(taskState(alloc, 'main')?.Events.find((e) => e.Type === 'Terminated')?.ExitCode, 7, eventMessages(alloc, 'main'));
      assert.equal(await logsWith(alloc.ID, 'main', /WRITE-FAILED/), 'seeded by the operator\nWRITE-FAILED\n');
      await agent.waitFor(
        "the shell's error on stderr",
        async () => (/Read-only file system/.test(allocLogs(agent, alloc.ID, 'main', true)) ? true : undefined),
        15_000,
      );
      assert.ok(!existsSync(join(volumes, 'seeded', 'new')), 'nothing was written on the host');
      await noLeftovers(alloc.ID);
    });

    it("a read-write volume mounted at the task user's own home is its HOME and passwd home, where `cd ~` writes to the volume", async () => {
      // www-data's home on the client is /var/www
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'home-volume',
          groupExtra: groupVolume('shared'),
          taskExtra: volumeMount('shared', '/var/www') + '      user = "www-data"\n',
          config: sh('echo "$HOME|$USER"; cd ~ && echo kept > .home-test && pwd; grep "^www-data:" /etc/passwd | busybox cut -d: -f6'),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
      assert.equal(await logsWith(alloc.ID, 'main', /^\/var\/www\n\/var\/www\n$/m), '/var/www|www-data\n/var/www\n/var/www\n');
      assert.equal(readFileSync(join(volumes, 'shared', '.home-test'), 'utf8'), 'kept\n');
      await noLeftovers(alloc.ID);
    });

    it("cap_add outside the plugin's allow_caps fails with a clear message in `nomad alloc status` and leaves nothing behind", async () => {
      const job = runJob(agent, nixJobHcl({ id: 'bad-cap', config: sh('true', '        cap_add = ["SYS_ADMIN"]'), taskExtra: '      user = "root"\n' }));
      const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'failed', 'the task to fail');
      const expected =
        /failed to validate task config: cap_add "SYS_ADMIN" is not in the plugin's allow_caps \(CHOWN, DAC_OVERRIDE, .*SETFCAP\); fix: remove SYS_ADMIN from cap_add in the task's config \{ \.\.\. \} block, or add "SYS_ADMIN" to allow_caps/;
      assert.match(eventMessages(alloc, 'main'), expected);
      assert.match(nomad(agent, ['alloc', 'status', alloc.ID]).stdout, /failed to validate task config: cap_add "SYS_ADMIN" is not in the plugin's allow_caps/);
      await noLeftovers(alloc.ID);
    });

    it('a root task keeps Nomad\'s default capabilities and can chown; with cap_drop = ["ALL"] it has none and cannot', async () => {
      const script = `touch /local/f && chown 1:1 /local/f && echo CHOWN-OK || echo CHOWN-FAILED; ${CAP_LINES}`;
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'root-caps',
          config: sh(script),
          taskExtra: '      user = "root"\n',
          extraTasks: [{ name: 'dropped', config: sh(script, '        cap_drop = ["ALL"]'), taskExtra: '      user = "root"\n' }],
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main') && isDead(a, 'dropped'), 'both tasks to finish');
      const kept = await logsWith(alloc.ID, 'main', /^NoNewPrivs/m);
      const dropped = await logsWith(alloc.ID, 'dropped', /^NoNewPrivs/m);
      const why = (task: string) => `${eventMessages(alloc, task)}\n${allocLogs(agent, alloc.ID, task)}${allocLogs(agent, alloc.ID, task, true)}`;
      assert.match(kept, /^CHOWN-OK$/m, why('main'));
      assert.match(dropped, /^CHOWN-FAILED$/m, why('dropped'));
      const none = '0000000000000000';
      const defaults = mask(DEFAULT_ROOT_CAPABILITIES);
      // runc narrows the bounding set to the task's set. bubblewrap 0.8 started as root drops the
      // bounding set only inside a user namespace, and raises the set as ambient capabilities;
      // no_new_privs is what keeps a root task from regaining more on execve (the `grep` here is
      // such an execve: with cap_drop = ["ALL"] and a full bounding set it still has nothing).
      const expected = (caps: string) =>
        runtime === 'runc'
          ? { CapPrm: caps, CapEff: caps, CapBnd: caps, CapAmb: none, NoNewPrivs: '1' }
          : { CapPrm: caps, CapEff: caps, CapAmb: caps, NoNewPrivs: '1' };
      const fields = (text: string) => {
        const { CapBnd, ...rest } = statusFields(text);
        return runtime === 'runc' ? { ...rest, CapBnd } : rest;
      };
      assert.deepEqual(fields(kept), expected(defaults));
      assert.deepEqual(fields(dropped), expected(none));
      await noLeftovers(alloc.ID);
    });

    it(`an unprivileged task's cap_add = ["NET_BIND_SERVICE"] is ${runtime === 'runc' ? 'granted as an ambient capability' : 'refused clearly: bubblewrap cannot grant it'}`, async () => {
      const job = runJob(agent, nixJobHcl({ id: 'user-cap', config: sh(`id -u; ${CAP_LINES}`, '        cap_add = ["net_bind_service"]') }));
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main') || a.ClientStatus === 'failed', 'the task to end');
      if (runtime === 'runc') {
        assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
        const out = await logsWith(alloc.ID, 'main', /^NoNewPrivs/m);
        const bind = mask(['CAP_NET_BIND_SERVICE']);
        assert.equal(out.split('\n')[0], '65534');
        assert.deepEqual(statusFields(out), { CapPrm: bind, CapEff: bind, CapBnd: bind, CapAmb: bind, NoNewPrivs: '1' });
      } else {
        assert.equal(alloc.ClientStatus, 'failed');
        assert.match(
          eventMessages(alloc, 'main'),
          /failed to validate task config: cap_add "NET_BIND_SERVICE" cannot be granted to user "nobody" \(uid 65534\): bwrap gives capabilities only to root tasks; fix: use runtime = "runc"/,
        );
      }
      await noLeftovers(alloc.ID);
    });
  });

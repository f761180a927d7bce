/**
 * Issues: exec into tasks, and script checks. Through a real Nomad agent, on both runtimes:
 * `nomad alloc exec` with and without a terminal (driven by node-pty like a person at a
 * keyboard), stdin EOF, exit codes, a missing program, and that the command really is inside
 * the task: its user, root, cwd, environment, cgroup and network namespace. Nomad reaches
 * ExecTask through template change scripts here: Nomad 1.11 runs script checks only with
 * Consul (provider = "nomad" checks are http and tcp), which the last test pins down.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as pty from 'node-pty';
import { busyboxPath } from '../test/support/nix-fixtures.js';
import { hclList, nixJobHcl, shConfig } from './support/job-hcl.js';
import { eventMessages, isRunning, nomad, runJob, waitForAlloc, type CliResult } from './support/jobs.js';
import { nomadBinary, type NomadAgent } from './support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from './support/task-agent.js';

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;
let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

const sh = (script: string) => shConfig(busybox, script);

const cliEnv = () => ({ ...process.env, NOMAD_ADDR: agent.address });

/** `nomad alloc exec [flags] <alloc> <command…>` with `input` on its stdin (not a terminal). */
function allocExec(allocId: string, command: readonly string[], options: { flags?: readonly string[]; input?: string } = {}): CliResult {
  const result = spawnSync(nomadBinary(), ['alloc', 'exec', ...(options.flags ?? []), allocId, ...command], {
    encoding: 'utf8',
    timeout: 60_000,
    input: options.input ?? '',
    env: cliEnv(),
  });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Pids of host processes whose command line is exactly `argv`. */
function pidsOf(argv: readonly string[]): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8') === `${argv.join('\0')}\0` ? [Number(p)] : [];
      } catch {
        return [];
      }
    });
}

/** Pids of host processes whose command line contains `text`. */
function pidsWith(text: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .flatMap((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text) ? [Number(p)] : [];
      } catch {
        return [];
      }
    });
}

const cgroupOf = (pid: number) => readFileSync(`/proc/${pid}/cgroup`, 'utf8');

/** A running service task whose command is `sleep <n>` with a number unique to this run. */
async function sleeper(id: string, groupExtra = ''): Promise<{ allocId: string; taskPid: number }> {
  const n = String(1_000_000 + randomInt(8_000_000));
  const job = runJob(agent, nixJobHcl({ id, type: 'service', groupExtra, config: sh(`exec sleep ${n}`) }));
  const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');
  const taskPid = await agent.waitFor('the task command', async () => pidsOf(['sleep', n])[0] ?? pidsOf([`${busybox}/bin/sleep`, n])[0]);
  return { allocId: alloc.ID, taskPid };
}

for (const runtime of RUNTIMES)
  describe(`nomad alloc exec (${runtime})`, { timeout: 600_000 }, () => {
    let allocId: string;
    let taskPid: number;

    before(async () => {
      taskAgent = await startTaskAgent(`exec-${runtime}`, { runtime });
      agent = taskAgent.agent;
      ({ allocId, taskPid } = await sleeper('exec'));
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it("`sh -c 'echo hi; exit 4'` prints hi and exits 4", () => {
      const result = allocExec(allocId, ['sh', '-c', 'echo hi; echo to-stderr >&2; exit 4']);
      assert.equal(result.stdout, 'hi\n', result.stderr);
      assert.equal(result.stderr, 'to-stderr\n');
      assert.equal(result.status, 4);
    });

    it("runs as the task user, in the task's root and cwd, with the task's environment", () => {
      const result = allocExec(allocId, ['sh', '-c', 'id -u; id -g; pwd; echo $NOMAD_ALLOC_ID; echo "$HOME|$USER|$LOGNAME"; ls /nix/store; ls /']);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), [
        '65534',
        '65534',
        '/local',
        allocId,
        '/local|nobody|nobody',
        busybox.slice('/nix/store/'.length),
        'alloc',
        'bin',
        'dev',
        'etc',
        'local',
        'nix',
        'proc',
        'secrets',
        'tmp',
        'usr',
      ]);
    });

    it("runs in the task's cgroup and pid namespace, and is killed when Nomad ends the session", async () => {
      const marker = `# ${randomInt(1_000_000_000)}`;
      const child = spawn(nomadBinary(), ['alloc', 'exec', allocId, 'sh', '-c', `ps -o pid,comm; while sleep 0.3; do echo tick; done ${marker}`], {
        env: cliEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      try {
        const execPid = await agent.waitFor("the exec'd shell", async () =>
          pidsWith(marker).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(`${busybox}/bin/sh\0`)),
        );
        assert.equal(cgroupOf(execPid), cgroupOf(taskPid), "the same cgroup as the task's command, in every hierarchy");
        assert.match(cgroupOf(execPid), /nomad/, "Nomad's cgroup for the task");
        assert.equal(readFileSync(`/proc/${execPid}/status`, 'utf8').match(/^NoNewPrivs:\s*(\d)/m)?.[1], '1');
        // inside, ps sees the task's processes: its init as PID 1
        await agent.waitFor('ps output', async () => (out.includes('tick') ? true : undefined));
        assert.match(out, /^\s*1 /m, out);
        // Nomad's client notices a vanished CLI at the command's next output and cancels the call
        child.kill('SIGKILL');
        await agent.waitFor("the exec'd command to be killed with its session", async () => (pidsWith(marker).length === 0 ? true : undefined), 20_000);
      } finally {
        child.kill('SIGKILL');
        for (const pid of pidsWith(marker)) process.kill(pid, 'SIGKILL');
      }
    });

    it('stdin EOF ends `cat`: `echo data | nomad alloc exec -i <alloc> cat` prints data', () => {
      const result = allocExec(allocId, ['cat'], { flags: ['-i'], input: 'data\n' });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, 'data\n');
    });

    it('a program that is not in the task exits 127 and says why', () => {
      const result = allocExec(allocId, ['bash', '-c', 'true']);
      assert.equal(result.status, 127);
      assert.match(result.stderr, /failed to exec in task: command "bash" is not in the task's PATH \(\/nix\/store\/[^)]*-busybox\/bin\); fix: /);
    });

    it('`nomad alloc exec -t <alloc> sh` behind a terminal: a /dev/pts/N of the task, resizes, exit 3', async () => {
      const term = pty.spawn(nomadBinary(), ['alloc', 'exec', '-t', allocId, 'sh'], { name: 'xterm', cols: 100, rows: 30, env: cliEnv() });
      let output = '';
      term.onData((d) => (output += d));
      const exited = new Promise<{ exitCode: number }>((resolve) => term.onExit(resolve));
      const waitOutput = (pattern: RegExp, what: string) =>
        agent
          .waitFor(what, async () => (pattern.test(output) ? true : undefined), 30_000)
          .catch((e: Error) => {
            throw new Error(`${e.message}\noutput: ${JSON.stringify(output)}`);
          });
      try {
        await waitOutput(/\$ /, 'the shell prompt');
        term.write('tty; stty size\r');
        await waitOutput(/\r\n30 100\r\n/, 'the terminal size');
        term.resize(120, 40);
        await new Promise((r) => setTimeout(r, 500));
        term.write('stty size; id -u; exit 3\r');
        const { exitCode } = await Promise.race([
          exited,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit; output: ${JSON.stringify(output)}`)), 30_000)),
        ]);
        assert.equal(exitCode, 3, output);
        const lines = output.split('\r\n');
        assert.ok(
          lines.some((l) => /^\/dev\/pts\/\d+$/.test(l)),
          `a terminal of the task's own /dev/pts: ${JSON.stringify(output)}`,
        );
        assert.ok(lines.includes('40 120'), `the resize reached the command: ${JSON.stringify(output)}`);
        assert.ok(lines.includes('65534'), output);
      } finally {
        term.kill('SIGKILL');
      }
    });

    it("a bridge-network task: the command is in the group's network namespace", async () => {
      const bridge = await sleeper('exec-bridge', '    network {\n      mode = "bridge"\n    }\n');
      const result = allocExec(bridge.allocId, ['sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr "\\n" " "']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.trim(), 'eth0 lo');
    });

    it('template change scripts run in the task through ExecTask: exit 0, exit 4, and a timeout with a clear error', async () => {
      const job = `exec-tmpl-${runtime}`;
      const slow = String(1_000_000 + randomInt(8_000_000));
      const put = (value: string) => {
        const result = nomad(agent, ['var', 'put', '-force', `nomad/jobs/${job}`, `value=${value}`]);
        assert.equal(result.status, 0, result.stderr + result.stdout);
      };
      put('one');
      const template = (file: string, script: string, timeout: string) => `      template {
        data        = "{{ with nomadVar \\"nomad/jobs/${job}\\" }}{{ .value }}{{ end }}"
        destination = "local/${file}"
        change_mode = "script"
        change_script {
          command       = "sh"
          args          = ${hclList(['-c', script])}
          timeout       = "${timeout}"
          fail_on_error = false
        }
      }
`;
      runJob(
        agent,
        nixJobHcl({
          id: job,
          type: 'service',
          config: sh('exec sleep 3600'),
          taskExtra: [
            template('ok.txt', 'echo "$(id -u) $(pwd) $(cat /local/ok.txt)" > /local/script-ran', '10s'),
            template('four.txt', 'exit 4', '10s'),
            template('slow.txt', `sleep ${slow}`, '2s'),
          ].join(''),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the task to run');
      await agent.waitFor('the first render', async () => (allocExec(alloc.ID, ['cat', '/local/ok.txt']).stdout.trim() === 'one' ? true : undefined));
      put('two');
      const events = await agent.waitFor(
        'the three change scripts to report',
        async () => {
          const a = await agent.api<Parameters<typeof eventMessages>[0]>(`/v1/allocation/${alloc.ID}`);
          const messages = eventMessages(a, 'main');
          return /exited with code: 4/.test(messages) && /Template successfully ran script/.test(messages) && /Template failed to run script/.test(messages)
            ? messages
            : undefined;
        },
        90_000,
      );
      assert.match(events, /Template successfully ran script sh with arguments: \[-c echo .*\]\. Exit code: 0/);
      assert.match(events, /Template ran script sh with arguments \[-c exit 4\] on change but it exited with code: 4/);
      assert.match(
        events,
        new RegExp(
          `Template failed to run script sh with arguments \\[-c sleep ${slow}\\] on change: rpc error: code = DeadlineExceeded desc = failed to exec in task: "sh -c sleep ${slow}" ran longer than its timeout of 2000 ms; its processes were killed`,
        ),
      );
      const ran = allocExec(alloc.ID, ['cat', '/local/script-ran']);
      assert.equal(ran.stdout.trim(), '65534 /local two', ran.stderr);
      assert.deepEqual([...pidsOf([`${busybox}/bin/sleep`, slow]), ...pidsOf(['sleep', slow])], [], 'the timed-out script was killed');
    });

    it('script checks: Nomad 1.11 refuses them for provider = "nomad" (they need Consul), hence the change scripts above and the driver-level ExecTask tests', () => {
      const dir = mkdtempSync(join(tmpdir(), 'nix-e2e-check-'));
      const file = join(dir, 'job.nomad.hcl');
      writeFileSync(
        file,
        nixJobHcl({
          id: 'script-check',
          type: 'service',
          config: sh('exec sleep 3600'),
          taskExtra:
            '      service {\n        name     = "checked"\n        provider = "nomad"\n        check {\n          type     = "script"\n          command  = "sh"\n          args     = ["-c", "test -f /local/ok"]\n          interval = "5s"\n          timeout  = "2s"\n        }\n      }\n',
        }),
      );
      const result = nomad(agent, ['job', 'validate', file]);
      assert.notEqual(result.status, 0);
      assert.match(result.stdout + result.stderr, /invalid check type \("script"\), must be one of tcp, http/);
    });
  });

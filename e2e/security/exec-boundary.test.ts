/**
 * Issue 10 (items 1, 2, 9): an exec into a task never lets the task reach the host side.
 * Through a real Nomad agent, on both runtimes:
 * (a) LD_PRELOAD from the job's env names a real preload library of the task's closure, whose
 *     constructor records its uid in a host directory only root can write: `nomad alloc exec`
 *     must not load it in a host process (no record), and the command still sees the variable;
 * (b) the same when the task re-execs itself with LD_PRELOAD in its environment (the exec
 *     copies the running command's environment);
 * (c) a work_dir that is a symlink to / in the closure, and a /local/wd the task replaces with
 *     a symlink to /, give the exec'd command the task's root as cwd, never the host's
 *     (a marker file in the host's / is not listed);
 * (d) bubblewrap: /proc/1/cmdline in the task is bwrap's short argv, no host path of the
 *     state_dir or the allocation;
 * (e) runc: io_uring_setup fails with EPERM (the seccomp profile refuses io_uring).
 * The fixture is built with this machine's gcc and added to the store with `nix-store --add`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from '../../test/support/nix-fixtures.js';
import { hcl, hclList, nixJobHcl } from '../support/job-hcl.js';
import { eventMessages, isDead, isRunning, runJob, waitForAlloc, type CliResult } from '../support/jobs.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

let busybox: string;
/** The fixture store path: lib/mark.so, bin/io-uring-probe, hostroot -> /. */
let fixture: string;
/** Where mark.so records each process that loaded it (host path, root-only). */
let marks: string;
/** A file in the host's / that no task may list. */
let hostMarker: string;

const PRELOAD_SOURCE = (dir: string) => `
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
  char path[512];
  snprintf(path, sizeof path, "${dir}/uid-%d-pid-%d", (int)getuid(), (int)getpid());
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) close(fd);
}
`;

const PROBE_SOURCE = `
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  unsigned char params[120] = {0};
  long fd = syscall(SYS_io_uring_setup, 1, params);
  if (fd >= 0) { printf("io_uring_setup: allowed\\n"); return 0; }
  printf("io_uring_setup: %s\\n", strerror(errno));
  return 1;
}
`;

function buildFixture(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-e2e-exec-boundary-'));
  try {
    const out = join(dir, 'exec-boundary');
    mkdirSync(join(out, 'lib'), { recursive: true });
    mkdirSync(join(out, 'bin'));
    writeFileSync(join(dir, 'mark.c'), PRELOAD_SOURCE(marks));
    writeFileSync(join(dir, 'probe.c'), PROBE_SOURCE);
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', join(out, 'lib', 'mark.so'), join(dir, 'mark.c')]);
    execFileSync('cc', ['-static', '-O2', '-o', join(out, 'bin', 'io-uring-probe'), join(dir, 'probe.c')]);
    symlinkSync('/', join(out, 'hostroot'));
    return execFileSync('nix-store', ['--add', out], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

before(() => {
  nomadBinary();
  busybox = busyboxPath();
  // only root can create files here: a record means mark.so ran in a root process on the host
  marks = mkdtempSync(join(tmpdir(), 'nix-e2e-preload-marks-'));
  chmodSync(marks, 0o700);
  fixture = buildFixture();
  hostMarker = `/nix-e2e-host-root-marker-${randomInt(1_000_000_000)}`;
  writeFileSync(hostMarker, 'host\n');
});

after(() => {
  rmSync(marks, { recursive: true, force: true });
  rmSync(hostMarker, { force: true });
});

/** A task config running `sh -c script` from busybox, with the fixture on PATH. */
const config = (script: string, extra = '') =>
  `        store_path = ${hcl(busybox)}\n        packages   = ${hclList([fixture])}\n        command    = "bin/sh"\n        args       = ${hclList(['-c', script])}\n${extra}`;

for (const runtime of RUNTIMES)
  describe(`exec boundary (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;

    before(async () => {
      taskAgent = await startTaskAgent(`exec-boundary-${runtime}`, { runtime });
      agent = taskAgent.agent;
    });

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    function allocExec(allocId: string, command: readonly string[]): CliResult {
      const result = spawnSync(nomadBinary(), ['alloc', 'exec', allocId, ...command], {
        encoding: 'utf8',
        timeout: 60_000,
        input: '',
        env: { ...process.env, NOMAD_ADDR: agent.address },
      });
      return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
    }

    async function running(id: string, script: string, options: { configExtra?: string; taskExtra?: string } = {}): Promise<string> {
      const job = runJob(
        agent,
        nixJobHcl({
          id,
          type: 'service',
          config: config(script, options.configExtra),
          ...(options.taskExtra === undefined ? {} : { taskExtra: options.taskExtra }),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main') || isDead(a, 'main'), 'the task to run');
      assert.ok(isRunning(alloc, 'main'), eventMessages(alloc, 'main'));
      return alloc.ID;
    }

    const preload = () => `${fixture}/lib/mark.so`;
    /** Forgets the records of earlier tests, so each test answers for its own exec only. */
    const clearMarks = () => {
      for (const name of readdirSync(marks)) rmSync(join(marks, name));
    };
    const sleep = () => `sleep ${1_000_000 + randomInt(8_000_000)}`;

    it('(a) LD_PRELOAD from the job env is loaded by no host process during an exec, and reaches the command', async () => {
      clearMarks();
      const allocId = await running(`preload-env-${runtime}`, `exec ${sleep()}`, {
        taskExtra: `      env {\n        LD_PRELOAD = ${hcl(preload())}\n      }\n`,
      });
      const result = allocExec(allocId, ['sh', '-c', 'echo "$LD_PRELOAD"']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, `${preload()}\n`);
      assert.deepEqual(readdirSync(marks), [], 'mark.so ran in a host process');
    });

    it('(b) LD_PRELOAD the task put into its own environment (exec env …) is loaded by no host process during an exec', async () => {
      clearMarks();
      const allocId = await running(`preload-self-${runtime}`, `exec env LD_PRELOAD=${preload()} ${sleep()}`);
      const result = allocExec(allocId, ['sh', '-c', 'echo "$LD_PRELOAD"']);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout, `${preload()}\n`, "the exec gets the running command's environment");
      assert.deepEqual(readdirSync(marks), [], 'mark.so ran in a host process');
    });

    it("no task variable or argument is in a host process's command line while an exec runs", async () => {
      const secret = `secret-${randomInt(1_000_000_000)}`;
      const allocId = await running(`secret-${runtime}`, `exec ${sleep()}`, { taskExtra: `      env {\n        TOKEN = ${hcl(secret)}\n      }\n` });
      const marker = `marker-${randomInt(1_000_000_000)}`;
      const child = spawn(nomadBinary(), ['alloc', 'exec', allocId, 'sh', '-c', `echo "$TOKEN"; sleep 30 # ${marker}`], {
        env: { ...process.env, NOMAD_ADDR: agent.address },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await agent.waitFor("the exec'd command", async () => (out.includes(secret) ? true : undefined));
        const hostSide = readdirSync('/proc')
          .filter((p) => /^\d+$/.test(p))
          .flatMap((p) => {
            try {
              const cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8');
              // the exec'd command's own argv and the nomad CLI's carry the marker, by design
              const expected = cmdline.startsWith(`${busybox}/bin/sh\0`) || cmdline.startsWith(`${nomadBinary()}\0`);
              return cmdline.includes(secret) || (cmdline.includes(marker) && !expected) ? [cmdline.replace(/\0/g, ' ')] : [];
            } catch {
              return [];
            }
          });
        assert.deepEqual(hostSide, []);
      } finally {
        child.kill('SIGKILL');
      }
    });

    // (bin and usr hold the /bin/sh and /usr/bin/env links into the closure)
    const TASK_ROOT = ['alloc', 'bin', 'dev', 'etc', 'local', 'nix', 'proc', 'secrets', 'tmp', 'usr'];

    it("(c) a work_dir symlink to / in the closure: the exec'd command starts in the task's root, not the host's", async () => {
      const allocId = await running(`workdir-link-${runtime}`, `exec ${sleep()}`, { configExtra: `        work_dir   = ${hcl(`${fixture}/hostroot`)}\n` });
      const result = allocExec(allocId, ['sh', '-c', 'ls -a . | grep -v "^\\.\\.\\?$"']);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), TASK_ROOT);
      assert.ok(!result.stdout.includes(hostMarker.slice(1)));
    });

    it("(c) a /local/wd the task replaced with a symlink to /: the exec'd command starts in the task's root, not the host's", async () => {
      const allocId = await running(`workdir-swap-${runtime}`, `mv /local/wd /local/wd.orig && ln -s / /local/wd && exec ${sleep()}`, {
        configExtra: '        work_dir   = "/local/wd"\n',
        // Nomad renders the template before the task starts, so /local/wd exists for the launch
        taskExtra: '      template {\n        data        = "x"\n        destination = "local/wd/keep"\n      }\n',
      });
      await agent.waitFor('the task to replace /local/wd', async () => (allocExec(allocId, ['sh', '-c', 'test -L /local/wd']).status === 0 ? true : undefined));
      const result = allocExec(allocId, ['sh', '-c', 'ls -a . | grep -v "^\\.\\.\\?$"']);
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.stdout.trim().split('\n'), TASK_ROOT);
      assert.ok(!result.stdout.includes(hostMarker.slice(1)));
    });

    if (runtime === 'bwrap') {
      it("(d) /proc/1/cmdline in the task is bwrap's short argv: no host path of the state_dir or the allocation", async () => {
        const script = `exec ${sleep()}`;
        const allocId = await running('cmdline-bwrap', script);
        const result = allocExec(allocId, ['cat', '/proc/1/cmdline']);
        assert.equal(result.status, 0, result.stderr);
        const bwrap = execFileSync('sh', ['-c', 'command -v bwrap'], { encoding: 'utf8' }).trim();
        assert.deepEqual(result.stdout.split('\0'), [bwrap, '--args', '5', '--', `${busybox}/bin/sh`, '-c', script, '']);
        assert.ok(!result.stdout.includes(taskAgent?.stateDir ?? '?') && !result.stdout.includes(allocId));
      });
    }

    if (runtime === 'runc') {
      it('(e) io_uring_setup fails with EPERM under the seccomp profile', async () => {
        const allocId = await running('io-uring-runc', `exec ${sleep()}`);
        const result = allocExec(allocId, ['io-uring-probe']);
        assert.equal(result.stdout, 'io_uring_setup: Operation not permitted\n', result.stderr);
        assert.equal(result.status, 1);
      });
    }
  });

/**
 * Issue 13: a supervisor as the task's PID-1-like command, through Nomad on both runtimes.
 * Debian's supervisord (Python, so its closure is the Python closure with supervisor's package
 * as a data group, test/support/python-closure.ts) runs three programs from a templated config:
 * `alpha` and `beta` each hold 32 MiB, `hog` waits for a file and then takes 96 MiB more.
 *   - `nomad alloc exec` sees supervisord and its programs in /proc;
 *   - the task's stats cover every program (memory of both holders);
 *   - the task's memory limit (160 MiB) covers them together: `hog` alone would fit, on top of
 *     the two holders it is OOM-killed by the kernel; supervisord logs its SIGKILL, the driver
 *     reports the kill as a task event at once, and the task keeps running;
 *   - `nomad alloc stop` stops supervisord, which stops both holders (their exits logged); the
 *     task's exit is a clean one, not an OOM kill (its main process was not killed).
 * supervisord rather than s6: setup.sh installs Debian's supervisor already, its closure is
 * the Python closure the web-app and time-zone workloads use, and its programs are plain
 * commands; s6's run scripts would need execline or a shell in the closure as well.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DebianClosure } from '../../test/support/debian-closure.js';
import { pythonClosure } from '../../test/support/python-closure.js';
import { hcl, hclList, nixJobHcl } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, waitForAllocId } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

let python: DebianClosure;

before(() => {
  nomadBinary();
  python = pythonClosure();
});

/** A program holding `argv[2]` MiB (written, so resident) until SIGTERM. */
const HOLDER = `import signal, sys, time
name, mib = sys.argv[1], int(sys.argv[2])
hold = bytearray(b"\\x01") * (mib << 20)
def stop(signum, frame):
    print(name + " got SIGTERM, exiting", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("%s holds %d MiB" % (name, mib), flush=True)
while True:
    time.sleep(1)
`;

/** Waits for /local/hog-go, then takes 96 MiB in 8 MiB steps. */
const HOG = `import os, time
print("hog waiting", flush=True)
while not os.path.exists("/local/hog-go"):
    time.sleep(0.2)
chunks = []
for i in range(12):
    chunks.append(bytearray(b"\\x01") * (8 << 20))
print("hog holds 96 MiB", flush=True)
while True:
    time.sleep(1)
`;

const program = (name: string, command: string, extra = '') => `[program:${name}]
command=${python.path}/bin/python3 ${command}
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
autorestart=false
startsecs=0
stopsignal=TERM
stopwaitsecs=10
${extra}`;

const supervisordConf = () => `[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile=/local/supervisord.pid
loglevel=info

${program('alpha', '/local/holder.py alpha 32')}
${program('beta', '/local/holder.py beta 32')}
${program('hog', '/local/hog.py')}
`;

function supervisorJob(id: string): string {
  const heredoc = (text: string) => `<<EOT\n${text}EOT`;
  return nixJobHcl({
    id,
    type: 'service',
    resources: { cpu: 200, memory: 160 },
    config: [
      `        store_path = ${hcl(python.path)}`,
      '        command    = "bin/python3"',
      `        args       = ${hclList(['-m', 'supervisor.supervisord', '-c', '/local/supervisord.conf'])}`,
    ].join('\n'),
    taskExtra: `      kill_timeout = "30s"
      env {
        PYTHONHOME = ${hcl(python.path)}
      }
      template {
        destination = "local/supervisord.conf"
        data        = ${heredoc(supervisordConf())}
      }
      template {
        destination = "local/holder.py"
        left_delimiter = "[["
        right_delimiter = "]]"
        data        = ${heredoc(HOLDER)}
      }
      template {
        destination = "local/hog.py"
        left_delimiter = "[["
        right_delimiter = "]]"
        data        = ${heredoc(HOG)}
      }
`,
  });
}

interface AllocStats {
  Tasks?: Record<string, { ResourceUsage?: { MemoryStats?: { RSS?: number; Usage?: number } } }>;
}

const MiB = 1 << 20;

for (const runtime of RUNTIMES)
  describe(`supervisord running three programs in one task through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`supervisor-${runtime}`, { runtime });
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('exec sees every program, stats and the memory limit cover them together, an OOM kill of one is reported, and alloc stop stops both holders cleanly', async () => {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const job = runJob(agent, supervisorJob(`supervisor-${runtime}`));
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main') || isDead(a, 'main'), 'supervisord to run');
      assert.ok(isRunning(alloc, 'main'), eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
      const logs = () => allocLogs(agent, alloc.ID, 'main');
      await agent
        .waitFor(
          'both holders and the hog to start',
          async () => (/alpha holds 32 MiB/.test(logs()) && /beta holds 32 MiB/.test(logs()) && /hog waiting/.test(logs()) ? true : undefined),
          60_000,
        )
        .catch((error: unknown) => {
          throw new Error(`${String(error).split('\n')[0]}; stdout: ${logs()}; stderr: ${allocLogs(agent, alloc.ID, 'main', true)}`);
        });
      assert.match(logs(), /^\S+ \S+ INFO spawned: 'alpha' with pid \d+$/m);
      assert.match(logs(), /^\S+ \S+ INFO spawned: 'beta' with pid \d+$/m);

      // nomad alloc exec sees supervisord and its three programs
      const exec = nomad(agent, [
        'alloc',
        'exec',
        '-task',
        'main',
        alloc.ID,
        'python3',
        '-c',
        'import os\nfor p in sorted(os.listdir("/proc")):\n  if p.isdigit():\n    try: print(open("/proc/%s/cmdline" % p).read().replace("\\0", " ").strip())\n    except OSError: pass',
      ]);
      assert.equal(exec.status, 0, exec.stderr);
      // (bwrap's own init shows too: its cmdline is bwrap's, not a program's)
      const commands = exec.stdout.split('\n').filter((l) => l.startsWith(`${python.path}/bin/python3 `) && !l.includes(' -c import os'));
      assert.deepEqual(
        commands.map((c) => c.replace(`${python.path}/`, '')).sort(),
        [
          'bin/python3 -m supervisor.supervisord -c /local/supervisord.conf',
          'bin/python3 /local/holder.py alpha 32',
          'bin/python3 /local/holder.py beta 32',
          'bin/python3 /local/hog.py',
        ].sort(),
      );

      // the task's stats hold both holders' memory
      const rss = await agent.waitFor(
        'the stats to cover both holders',
        async () => {
          const stats = await agent.api<AllocStats>(`/v1/client/allocation/${alloc.ID}/stats`).catch(() => undefined);
          const memory = stats?.Tasks?.main?.ResourceUsage?.MemoryStats;
          return memory?.RSS !== undefined && memory.RSS >= 64 * MiB ? memory.RSS : undefined;
        },
        60_000,
      );
      assert.ok(rss < 160 * MiB, `RSS ${rss}`);

      // the hog on top of the holders passes the task's limit: the kernel kills it
      const go = nomad(agent, ['alloc', 'exec', '-task', 'main', alloc.ID, 'python3', '-c', 'open("/local/hog-go", "w").close()']);
      assert.equal(go.status, 0, go.stderr);
      await agent
        .waitFor(
          'supervisord to log the hog’s SIGKILL',
          async () => (/WARN exited: hog \(terminated by SIGKILL; not expected\)$/m.test(logs()) ? true : undefined),
          60_000,
        )
        .catch((error: unknown) => {
          throw new Error(`${String(error).split('\n')[0]}; stdout: ${logs()}; events: ${eventMessages(alloc, 'main')}`);
        });
      assert.equal(logs().includes('hog holds 96 MiB'), false);
      const reported = await waitForAllocId(
        agent,
        alloc.ID,
        (a) => (taskState(a, 'main')?.Events ?? []).some((e) => e.Type === 'Driver' && e.DisplayMessage.startsWith('OOM')),
        'the driver to report the OOM kill',
        30_000,
      ).catch((error: unknown) => {
        throw new Error(`${String(error).split('\n')[0]}; events: ${eventMessages(alloc, 'main')}`);
      });
      assert.ok(isRunning(reported, 'main'));
      assert.deepEqual(
        taskState(reported, 'main')
          ?.Events.filter((e) => e.Type === 'Driver' && e.DisplayMessage.startsWith('OOM'))
          .map((e) => e.DisplayMessage),
        ['OOM kill: the kernel killed 1 process of the task, over its memory limit of 160 MiB; raise resources.memory (or memory_max)'],
      );

      // alloc stop: supervisord stops both holders, which log their exits, and exits cleanly
      const stop = nomad(agent, ['alloc', 'stop', '-detach', alloc.ID]);
      assert.equal(stop.status, 0, stop.stderr + stop.stdout);
      const dead = await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'supervisord to stop', 60_000);
      const out = logs();
      for (const name of ['alpha', 'beta']) {
        assert.match(out, new RegExp(`^${name} got SIGTERM, exiting$`, 'm'));
        assert.match(out, new RegExp(`^\\S+ \\S+ INFO stopped: ${name} \\(exit status 0\\)$`, 'm'));
      }
      const terminated = taskState(dead, 'main')?.Events.find((e) => e.Type === 'Terminated');
      assert.equal(terminated?.ExitCode, 0, eventMessages(dead, 'main'));
      assert.equal(terminated?.Details?.oom_killed, 'false', JSON.stringify(terminated));
      assert.equal(
        taskState(dead, 'main')?.Events.some((e) => e.Type === 'Killed' && /kill_timeout/.test(e.DisplayMessage)),
        false,
      );
      nomad(agent, ['job', 'stop', '-purge', job]);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
    });
  });

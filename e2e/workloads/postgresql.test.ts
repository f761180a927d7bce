/**
 * Issue 13 (real programs): PostgreSQL 15 through a real Nomad agent, once per runtime, from a
 * genuine closure of Debian's build (test/support/debian-closure.ts): `initdb` then `postgres`
 * on a client host volume as the unprivileged task user (`postgres`), which exercises `/bin/sh`
 * through popen (initdb runs `postgres -V` and the bootstrap backend through it: the closure's
 * dash, linked by `fhs_links`), POSIX shared memory in `/dev/shm` (initdb probes shm_open and
 * picks dynamic_shared_memory_type = posix) and a UTF-8 locale from the closure (`LOCPATH`). A
 * poststart client task of the group writes a row over localhost with `psql`, in the host's
 * network and in a bridge namespace of the group's own; after `nomad alloc restart -all-tasks`
 * the row is still there and `nomad alloc exec` reads it; `kill_signal = "SIGINT"` (fast
 * shutdown) leaves a clean data directory; a new allocation finds the cluster on the volume.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDebianClosure, type DebianClosure } from '../../test/support/debian-closure.js';
import { busyboxPath } from '../../test/support/nix-fixtures.js';
import { hcl, nixJobHcl, storeConfig } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, waitForAlloc, waitForAllocId, type Allocation } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';
import { startLatency } from './start-latency.js';

/** Where Debian installs PostgreSQL 15 (postgresql-15); its share/ is found relative to bin/. */
const PG = '/usr/lib/postgresql/15';

/** The task user: Debian's `postgres` system user (a user of its own, not `nobody`, owns the cluster). */
const PG_USER = 'postgres';

/**
 * PostgreSQL's closure: `lib/postgresql/15/{bin,lib}` laid out as under /usr (postgres finds
 * `share/postgresql/15` relative to its own binary, as `../../../share/postgresql/15`), the
 * share data and glibc's C.UTF-8 locale as data store paths, dash as `bin/sh` (for popen) and
 * coreutils' `sleep` (the client's wait loop); without LLVM JIT (`llvmjit.so` pulls 115 MB of LLVM; nixpkgs builds
 * PostgreSQL without JIT by default too, and the server runs without it when the provider is missing).
 */
export function postgresClosure(): DebianClosure {
  return buildDebianClosure({
    name: 'postgresql',
    programs: [
      { from: PG, to: 'lib/postgresql/15', exclude: ['lib/bitcode', 'lib/llvmjit.so', 'lib/llvmjit_types.bc'] },
      { from: '/bin/dash', to: 'bin/sh' },
      { from: '/bin/sleep', to: 'bin/sleep' },
    ],
    data: [
      { name: 'postgresql-share', paths: [{ from: '/usr/share/postgresql/15', to: 'share/postgresql/15', exclude: ['man'] }] },
      { name: 'glibc-locales', paths: [{ from: '/usr/lib/locale/C.utf8', to: 'lib/locale/C.utf8' }] },
    ],
  });
}

let pg: DebianClosure;
let busybox: string;

/** The group's network: the host's, or a namespace of its own (CNI bridge) that both tasks share. */
const NETWORK_MODES = ['host', 'bridge'] as const;

before(() => {
  nomadBinary();
  pg = postgresClosure();
  busybox = busyboxPath();
});

/** The environment both tasks' scripts set: the closure's programs and its locale, nothing of the host. */
const pgEnv = () => `export PATH=${pg.path}/lib/postgresql/15/bin:${pg.path}/bin LOCPATH=${pg.path}/lib/locale LANG=C.UTF-8; `;

/** initdb once (the volume keeps the cluster), then postgres on localhost only, no Unix socket (Debian's /var/run/postgresql is not there). */
const serverScript = () =>
  `${pgEnv()}set -e; if [ ! -s /data/pg/PG_VERSION ]; then initdb -D /data/pg -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null; echo initdb done; fi; ` +
  'exec postgres -D /data/pg -c listen_addresses=127.0.0.1 -p "$NOMAD_PORT_db" -c unix_socket_directories=';

/**
 * psql's options: no psqlrc, quiet, unaligned tuples only, stop on error, the server on
 * localhost. Long forms: the `nomad` CLI takes a `-h` anywhere in its arguments for `-help`.
 */
const psqlArgs = (port: string) => [
  '--no-psqlrc',
  '--quiet',
  '--no-align',
  '--tuples-only',
  '--set=ON_ERROR_STOP=1',
  '--host=127.0.0.1',
  `--port=${port}`,
  '--username=postgres',
];

/** Waits for the server, writes one row per run, prints the table and the server's settings. */
const clientScript = () =>
  `${pgEnv()}set -e; i=0; until pg_isready -q -h 127.0.0.1 -p "$NOMAD_PORT_db"; do i=$((i+1)); [ $i -lt 120 ] || exit 3; sleep 0.5; done; ` +
  `q() { psql ${psqlArgs('"$NOMAD_PORT_db"').join(' ')} -c "$1"; }; ` +
  `q "CREATE TABLE IF NOT EXISTS runs (n serial PRIMARY KEY, word text)"; q "INSERT INTO runs (word) VALUES ('grüße')"; ` +
  `q "SELECT n || ' ' || upper(word) FROM runs ORDER BY n"; ` +
  `q "SELECT current_setting('server_encoding') || ' ' || current_setting('lc_collate') || ' ' || current_setting('lc_ctype')"; ` +
  `q "SELECT current_setting('dynamic_shared_memory_type') || ' ' || current_setting('TimeZone') || ' ' || pg_jit_available() || ' ' || count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"`;

for (const runtime of RUNTIMES)
  describe(`PostgreSQL through Nomad (${runtime})`, { timeout: 900_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    let agent: NomadAgent;
    let volumes: string;

    before(async () => {
      // the volume's parent is searchable by the task user (bwrap binds it as that user); the
      // volume itself is the task user's and private, as PostgreSQL wants its data dir
      volumes = mkdtempSync(`/var/lib/nix-e2e-pg-${runtime}-`);
      chmodSync(volumes, 0o711);
      const uid = spawnSync('id', ['-u', PG_USER], { encoding: 'utf8' }).stdout.trim();
      const gid = spawnSync('id', ['-g', PG_USER], { encoding: 'utf8' }).stdout.trim();
      assert.match(`${uid}:${gid}`, /^\d+:\d+$/, `the host has a user ${PG_USER} (Debian's postgresql-common makes it)`);
      for (const mode of NETWORK_MODES) {
        mkdirSync(join(volumes, mode), { mode: 0o700 });
        chownSync(join(volumes, mode), Number(uid), Number(gid));
      }
      taskAgent = await startTaskAgent(`pg-${runtime}`, {
        runtime,
        clientConfig: NETWORK_MODES.map(
          (mode) => `  host_volume "pgdata-${mode}" {\n    path      = ${hcl(join(volumes, mode))}\n    read_only = false\n  }`,
        ).join('\n'),
      });
      agent = taskAgent.agent;
    });

    const leftovers = (allocId: string) => {
      assert.ok(taskAgent !== undefined);
      return waitForNoLeftovers(taskAgent, allocId);
    };

    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      if (volumes !== undefined) rmSync(volumes, { recursive: true, force: true });
    });

    /** The client's stdout once it printed `lines` lines (it runs again after a restart, appending). */
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
          () =>
            `${allocLogs(agent, allocId, 'client')}\nstderr: ${allocLogs(agent, allocId, 'client', true)}\nserver: ${allocLogs(agent, allocId, 'main', true)}`,
        );

    for (const mode of NETWORK_MODES)
      it(`initdb and postgres on a host volume as the postgres user; a psql client task writes a row over localhost (network mode ${mode}) that survives \`nomad alloc restart\`; SIGINT leaves a clean shutdown`, async () => {
        const jobHcl = nixJobHcl({
          id: `postgres-${mode}`,
          type: 'service',
          groupExtra: `    network {\n      mode = "${mode}"\n      port "db" {}\n    }\n    volume "pgdata" {\n      type      = "host"\n      source    = "pgdata-${mode}"\n      read_only = false\n    }\n`,
          resources: { cpu: 200, memory: 256 },
          taskExtra: [
            '      volume_mount {',
            '        volume      = "pgdata"',
            '        destination = "/data"',
            '      }',
            `      user         = ${hcl(PG_USER)}`,
            '      kill_signal  = "SIGINT"',
            '      kill_timeout = "60s"',
          ].join('\n'),
          config: storeConfig(pg.path, 'bin/sh', ['-c', serverScript()]),
          extraTasks: [
            {
              name: 'client',
              config: storeConfig(pg.path, 'bin/sh', ['-c', clientScript()]),
              taskExtra: '      lifecycle {\n        hook = "poststart"\n      }',
            },
          ],
        });
        const job = runJob(agent, jobHcl);
        const running = (a: Allocation) => isRunning(a, 'main');
        const alloc = await waitForAlloc(agent, job, running, 'postgres to run', 300_000);
        const first = await clientOutput(alloc.ID, 3);
        assert.equal(first, '1 GRÜßE\nUTF8 C.UTF-8 C.UTF-8\nposix UTC0 false 1\n');
        startLatency(`postgresql (${runtime}, ${mode}) cold`, alloc, 'main');

        const restart = nomad(agent, ['alloc', 'restart', '-all-tasks', alloc.ID]);
        assert.equal(restart.status, 0, restart.stderr);
        const second = await clientOutput(alloc.ID, 7);
        assert.equal(
          second,
          '1 GRÜßE\nUTF8 C.UTF-8 C.UTF-8\nposix UTC0 false 1\n1 GRÜßE\n2 GRÜßE\nUTF8 C.UTF-8 C.UTF-8\nposix UTC0 false 1\n',
          'the first row is still there',
        );
        await waitForAllocId(agent, alloc.ID, running, 'postgres to run again');
        const port = String(alloc.AllocatedResources?.Shared?.Ports?.find((p) => p.Label === 'db')?.Value);
        const exec = nomad(agent, [
          'alloc',
          'exec',
          '-task',
          'main',
          alloc.ID,
          `${pg.path}/lib/postgresql/15/bin/psql`,
          ...psqlArgs(port),
          '-c',
          'SELECT count(*), current_user FROM runs',
        ]);
        assert.equal(exec.status, 0, exec.stderr);
        assert.equal(exec.stdout, '2|postgres\n', "`nomad alloc exec` runs the closure's psql in the task");

        nomad(agent, ['job', 'stop', job]);
        const stopped = await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'postgres to stop', 120_000);
        const serverLog = allocLogs(agent, alloc.ID, 'main', true);
        assert.match(serverLog, /received fast shutdown request/, eventMessages(stopped, 'main'));
        assert.match(serverLog, /database system is shut down/);
        assert.equal((serverLog.match(/initdb done/g) ?? []).length, 0, 'initdb writes to stdout, not stderr');
        assert.equal(allocLogs(agent, alloc.ID, 'main'), 'initdb done\n', 'initdb ran once: the restarted server found its cluster on the volume');
        const control = spawnSync(`${PG}/bin/pg_controldata`, ['-D', join(volumes, mode, 'pg')], { encoding: 'utf8' });
        assert.equal(control.status, 0, control.stderr);
        assert.equal(/^Database cluster state:\s*(.*)$/m.exec(control.stdout)?.[1], 'shut down');
        assert.deepEqual(await leftovers(alloc.ID), []);

        // a new allocation of the same closure (warm: realised and viewed before) finds the cluster
        runJob(agent, jobHcl);
        const again = await waitForAlloc(agent, job, (a) => a.ID !== alloc.ID && isRunning(a, 'main'), 'the second allocation to run', 300_000);
        assert.equal(await clientOutput(again.ID, 5), '1 GRÜßE\n2 GRÜßE\n3 GRÜßE\nUTF8 C.UTF-8 C.UTF-8\nposix UTC0 false 1\n');
        startLatency(`postgresql (${runtime}, ${mode}) warm`, again, 'main');
        nomad(agent, ['job', 'stop', job]);
        await waitForAllocId(agent, again.ID, (a) => isDead(a, 'main'), 'postgres to stop again', 120_000);
        assert.deepEqual(await leftovers(again.ID), []);
      });

    // PostgreSQL's parallel queries put their hash tables in POSIX shared memory (a 64 MiB
    // /dev/shm fails them with "could not resize shared memory segment"), as do browsers and
    // ML data loaders: the task's /dev/shm holds up to its memory limit on both runtimes (its
    // pages are charged to the task's memory cgroup), not runc's default 64 MiB
    it('/dev/shm holds more than 64 MiB, up to the task memory limit (dynamic shared memory of large parallel queries)', async () => {
      const job = runJob(
        agent,
        nixJobHcl({
          id: 'shm',
          resources: { memory: 256 },
          config: storeConfig(busybox, 'bin/sh', [
            '-c',
            'dd if=/dev/zero of=/dev/shm/PostgreSQL.1 bs=1048576 count=160 2>/dev/null; wc -c < /dev/shm/PostgreSQL.1',
          ]),
        }),
      );
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(allocLogs(agent, alloc.ID, 'main'), `${160 * 1048576}\n`, allocLogs(agent, alloc.ID, 'main', true));
      assert.deepEqual(await leftovers(alloc.ID), []);
    });
  });

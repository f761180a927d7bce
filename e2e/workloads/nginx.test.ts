/**
 * Issue 13, the first real workload: Debian's nginx as a Nix closure (glibc, OpenSSL, PCRE2,
 * zlib, libxcrypt and mime.types as separate store paths, test/support/debian-closure.ts),
 * run through Nomad on both runtimes the way an operator runs it: its config rendered by a
 * `template` into /local from a Nomad variable, its error and access logs on stderr and stdout
 * (`nomad alloc logs`), a `change_mode = "signal"` reload on SIGHUP when the variable changes,
 * and a graceful stop on `kill_signal = "SIGQUIT"`. Nothing of the host is in the task's root:
 * nginx's compiled-in paths (/etc/nginx, /var/lib/nginx, /run/nginx.pid) are overridden by
 * flags and config.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type DebianClosure, nginxClosure } from '../../test/support/debian-closure.js';
import { hcl, hclList, nixJobHcl } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, waitForAllocId } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

let nginx: DebianClosure;

/**
 * Host pid of the allocation's nginx master: in a cgroup of the allocation, titled `nginx:
 * master process` (nginx writes its title over its argv and environment).
 */
function masterOf(allocId: string): number | undefined {
  const pid = readdirSync('/proc').find((p) => {
    try {
      return (
        /^\d+$/.test(p) &&
        readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(allocId) &&
        readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('nginx: master process')
      );
    } catch {
      return false;
    }
  });
  return pid === undefined ? undefined : Number(pid);
}

before(() => {
  nomadBinary();
  nginx = nginxClosure();
});

/** nginx's config, a Nomad template: the greeting comes from the job's variable. */
const nginxConf = (jobId: string) => `pid /local/nginx.pid;
error_log /dev/stderr notice;
worker_processes 1;
events {}
http {
  include ${nginx.path}/conf/mime.types;
  access_log /dev/stdout;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen {{ env "NOMAD_PORT_http" }};
    location = /greeting {
      default_type text/plain;
      return 200 "{{ with nomadVar "nomad/jobs/${jobId}" }}{{ .greeting }}{{ end }}\\n";
    }
    location / {
      root /local/html;
    }
  }
}
`;

const PAGE = '<h1>served by nginx from a Nix closure</h1>\n';

function nginxJob(jobId: string): string {
  const heredoc = (text: string) => `<<EOT\n${text}EOT`;
  return nixJobHcl({
    id: jobId,
    type: 'service',
    groupExtra: '    network {\n      port "http" {}\n    }\n',
    config: [
      `        store_path = ${hcl(nginx.path)}`,
      '        command    = "bin/nginx"',
      `        args       = ${hclList(['-p', '/local/', '-c', '/local/nginx.conf', '-e', '/dev/stderr', '-g', 'daemon off;'])}`,
    ].join('\n'),
    taskExtra: `      kill_signal  = "SIGQUIT"
      kill_timeout = "30s"
      template {
        destination   = "local/nginx.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        splay         = "0s"
        data          = ${heredoc(nginxConf(jobId))}
      }
      template {
        destination = "local/html/index.html"
        data        = ${heredoc(PAGE)}
      }
`,
  });
}

for (const runtime of RUNTIMES)
  describe(`nginx from a Debian closure through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`nginx-${runtime}`, { runtime });
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('serves its templated config, logs to alloc logs, reloads on SIGHUP when the variable changes, and stops gracefully on SIGQUIT', async () => {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const jobId = `nginx-${runtime}`;
      const put = (greeting: string) => {
        const result = nomad(agent, ['var', 'put', '-force', `nomad/jobs/${jobId}`, `greeting=${greeting}`]);
        assert.equal(result.status, 0, result.stderr + result.stdout);
      };
      put('hello-v1');
      const job = runJob(agent, nginxJob(jobId));
      const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main') || isDead(a, 'main'), 'nginx to run');
      assert.ok(isRunning(alloc, 'main'), eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
      const port = alloc.AllocatedResources?.Shared?.Ports?.find((p) => p.Label === 'http')?.Value;
      assert.ok(port !== undefined);
      const get = async (path: string) => {
        const response = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
        return response === undefined ? undefined : { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
      };

      // the page, with the content type of the closure's mime.types, and the greeting
      const page = await agent
        .waitFor('nginx to answer', async () => get('/index.html'), 60_000)
        .catch((error: unknown) => {
          throw new Error(`${String(error).split('\n')[0]}; its stderr: ${allocLogs(agent, alloc.ID, 'main', true)}`);
        });
      assert.deepEqual(page, { status: 200, type: 'text/html', body: PAGE });
      assert.deepEqual(await get('/greeting'), { status: 200, type: 'text/plain', body: 'hello-v1\n' });

      // the access log on stdout, the error log (notice level) on stderr
      const accessLine = /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/greeting HTTP\/1\.1" 200 9 "-" "node"$/m;
      await agent.waitFor('the access log line', async () => (accessLine.test(allocLogs(agent, alloc.ID, 'main')) ? true : undefined), 30_000);
      const started = allocLogs(agent, alloc.ID, 'main', true);
      assert.match(started, /\[notice\] \d+#\d+: nginx\/1\.\d+\.\d+$/m);
      assert.match(started, /\[notice\] \d+#\d+: start worker process \d+$/m);
      assert.doesNotMatch(started, /\[(emerg|alert|crit|error)\]/);

      // nothing of the host in its root, and every file it maps (libraries, the loader) from its closure
      const master = masterOf(alloc.ID);
      assert.ok(master !== undefined, 'the nginx master process');
      assert.deepEqual(readdirSync(`/proc/${master}/root`).sort(), ['alloc', 'dev', 'etc', 'local', 'nix', 'proc', 'secrets', 'tmp']);
      const mapped = new Set(
        readFileSync(`/proc/${master}/maps`, 'utf8')
          .split('\n')
          .map((line) => line.split(/\s+/)[5] ?? '')
          .filter((path) => path.startsWith('/'))
          .map((path) => (path.startsWith('/nix/store/') ? path.split('/').slice(0, 4).join('/') : path)),
      );
      // (`/dev/zero (deleted)` is how the kernel names shared anonymous memory: nginx's shm zones)
      assert.deepEqual(
        [...mapped].sort(),
        ['/dev/zero', nginx.path, ...['glibc', 'libxcrypt', 'openssl', 'pcre2', 'zlib'].map((l) => nginx.libraries[l])].sort(),
      );

      // a new greeting: the template renders it, Nomad sends SIGHUP, nginx reloads
      put('hello-v2');
      const reloaded = await agent.waitFor(
        'the new greeting after the reload',
        async () => {
          const r = await get('/greeting');
          return r?.body === 'hello-v2\n' ? r : undefined;
        },
        90_000,
      );
      assert.deepEqual(reloaded, { status: 200, type: 'text/plain', body: 'hello-v2\n' });
      const afterReload = allocLogs(agent, alloc.ID, 'main', true);
      assert.match(afterReload, /\[notice\] \d+#\d+: signal 1 \(SIGHUP\) received(?: from \d+)?, reconfiguring$/m);
      assert.match(afterReload, /\[notice\] \d+#\d+: reconfiguring$/m);
      // the reloaded configuration opened /dev/stdout again: its access log still reaches Nomad
      assert.equal((await get('/index.html?after-reload'))?.body, PAGE);
      const reopened = /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/index\.html\?after-reload HTTP\/1\.1" 200 44 "-" "node"$/m;
      await agent.waitFor('the access log line after the reload', async () => (reopened.test(allocLogs(agent, alloc.ID, 'main')) ? true : undefined), 30_000);
      const running = await waitForAllocId(agent, alloc.ID, (a) => /Signaling/.test(eventMessages(a, 'main')), 'the template signal in the task events');
      assert.match(eventMessages(running, 'main'), /Signaling: Template re-rendered/);
      assert.ok(isRunning(running, 'main'), 'a reload is not a restart');
      assert.equal(taskState(running, 'main')?.Events.filter((e) => e.Type === 'Started').length, 1);

      // graceful stop: SIGQUIT, workers finish, exit code 0
      const t0 = Date.now();
      const stop = nomad(agent, ['job', 'stop', '-detach', job]);
      assert.equal(stop.status, 0, stop.stderr + stop.stdout);
      const dead = await waitForAllocId(agent, alloc.ID, (a) => isDead(a, 'main'), 'nginx to stop', 60_000);
      assert.ok(Date.now() - t0 < 20_000, 'nginx stops on its SIGQUIT, long before the 30 s kill_timeout');
      const terminated = taskState(dead, 'main')?.Events.find((e) => e.Type === 'Terminated');
      assert.equal(terminated?.ExitCode, 0, eventMessages(dead, 'main'));
      assert.equal(terminated?.Signal, 0);
      const stopped = await agent.waitFor(
        'the shutdown lines',
        async () => {
          const logs = allocLogs(agent, alloc.ID, 'main', true);
          return /: exit$/m.test(logs.split('SIGQUIT').pop() ?? '') ? logs : undefined;
        },
        30_000,
      );
      assert.match(stopped, /\[notice\] \d+#\d+: gracefully shutting down$/m);
      // the signals reached the master alone (it passes them to its workers over its channel);
      // the driver signalled the whole process group before (each worker logged them too)
      const masterNsPid = /\[notice\] (\d+)#\d+: nginx\/1\.\d+\.\d+$/m.exec(stopped)?.[1];
      const received = [...stopped.matchAll(/\[notice\] (\d+)#\d+: (signal [13] \(SIG\w+\) received)(?: from \d+)?(, .*)$/gm)].map(
        ([, pid, what, rest]) => `${pid}: ${what}${rest}`,
      );
      assert.deepEqual(received, [`${masterNsPid}: signal 1 (SIGHUP) received, reconfiguring`, `${masterNsPid}: signal 3 (SIGQUIT) received, shutting down`]);
      assert.doesNotMatch(stopped, /\[(emerg|alert|crit|error)\]/);
      nomad(agent, ['job', 'stop', '-purge', job]);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
    });
  });

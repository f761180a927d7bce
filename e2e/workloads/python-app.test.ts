/**
 * Issue 13: a Python web app through Nomad on both runtimes. The closure is Debian's Python
 * (test/support/python-closure.ts: the interpreter, its standard library as its own store path,
 * glibc, OpenSSL, libffi, … , thousands of files) given as a store path, with PYTHONHOME set to
 * it (Debian's interpreter has /usr compiled in; the task's root has no /usr). The app's code
 * is shipped the way the seed ships it: an `artifact` (a tarball the test serves on localhost,
 * with its sha256 checksum) that Nomad downloads and unpacks into local/. The app serves a page
 * on its Nomad port with exact content; a wrong checksum fails the task before it starts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DebianClosure } from '../../test/support/debian-closure.js';
import { pythonClosure, pythonVersion } from '../../test/support/python-closure.js';
import { hcl, hclList, nixJobHcl } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, isRunning, nomad, runJob, taskState, waitForAlloc, type Allocation } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

const APP = `import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from python %d.%d\\nprefix %s\\nhttp.server %s\\n/usr exists %s\\n" % (
            sys.version_info[0], sys.version_info[1], sys.prefix, http.server.__file__, os.path.exists("/usr"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.HTTPServer(("127.0.0.1", int(os.environ["NOMAD_PORT_http"])), Handler)
print("listening on", server.server_address[1], flush=True)
server.serve_forever()
`;

let python: DebianClosure;
let artifactDir: string;
let server: Server;
let artifactUrl: string;
let checksum: string;

before(async () => {
  nomadBinary();
  python = pythonClosure();
  artifactDir = mkdtempSync(join(tmpdir(), 'nix-e2e-python-app-'));
  mkdirSync(join(artifactDir, 'src', 'app'), { recursive: true });
  writeFileSync(join(artifactDir, 'src', 'app', 'app.py'), APP);
  execFileSync('tar', ['-czf', join(artifactDir, 'app.tar.gz'), '-C', join(artifactDir, 'src'), 'app']);
  const tarball = readFileSync(join(artifactDir, 'app.tar.gz'));
  checksum = createHash('sha256').update(tarball).digest('hex');
  server = createServer((request, response) => {
    if (request.url === '/app.tar.gz') {
      response.writeHead(200, { 'Content-Type': 'application/gzip' }).end(tarball);
    } else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  artifactUrl = `http://127.0.0.1:${address.port}/app.tar.gz`;
});

after(() => {
  server?.close();
  if (artifactDir !== undefined) rmSync(artifactDir, { recursive: true, force: true });
});

function appJob(id: string, sha256: string): string {
  return nixJobHcl({
    id,
    type: 'service',
    groupExtra: '    network {\n      port "http" {}\n    }\n',
    config: [`        store_path = ${hcl(python.path)}`, '        command    = "bin/python3"', `        args       = ${hclList(['/local/app/app.py'])}`].join(
      '\n',
    ),
    taskExtra: `      env {
        PYTHONHOME = ${hcl(python.path)}
      }
      artifact {
        source      = ${hcl(artifactUrl)}
        destination = "local/"
        options {
          checksum = ${hcl(`sha256:${sha256}`)}
        }
      }
`,
  });
}

/** Received → Started of a task, from its events (ms). */
function startMs(alloc: Allocation): number | undefined {
  const events = (taskState(alloc, 'main')?.Events ?? []) as { Type: string; Time?: number }[];
  const received = events.find((e) => e.Type === 'Received')?.Time;
  const started = events.find((e) => e.Type === 'Started')?.Time;
  return received === undefined || started === undefined ? undefined : Math.round((started - received) / 1e6);
}

for (const runtime of RUNTIMES)
  describe(`a Python web app from a Debian closure through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`python-${runtime}`, { runtime });
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    it('the app, unpacked by Nomad from a checksummed artifact, serves its page from the closure’s interpreter and standard library', async (t) => {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const v = pythonVersion();
      const timings: number[] = [];
      for (const round of ['cold', 'warm']) {
        const job = runJob(agent, appJob(`python-app-${round}`, checksum));
        const alloc = await waitForAlloc(agent, job, (a) => isRunning(a, 'main') || isDead(a, 'main'), 'the app to run');
        assert.ok(isRunning(alloc, 'main'), eventMessages(alloc, 'main') + allocLogs(agent, alloc.ID, 'main', true));
        const port = alloc.AllocatedResources?.Shared?.Ports?.find((p) => p.Label === 'http')?.Value;
        assert.ok(port !== undefined);
        const response = await agent
          .waitFor(
            'the app to answer',
            async () => {
              const r = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
              return r === undefined ? undefined : { status: r.status, type: r.headers.get('content-type'), body: await r.text() };
            },
            60_000,
          )
          .catch((error: unknown) => {
            throw new Error(`${String(error).split('\n')[0]}; its stderr: ${allocLogs(agent, alloc.ID, 'main', true)}`);
          });
        assert.deepEqual(response, {
          status: 200,
          type: 'text/plain; charset=utf-8',
          body: `hello from python ${v}\nprefix ${python.path}\nhttp.server ${python.path}/lib/python${v}/http/server.py\n/usr exists False\n`,
        });
        assert.equal(allocLogs(agent, alloc.ID, 'main'), `listening on ${port}\n`);
        // http.server logs each request on stderr
        assert.match(allocLogs(agent, alloc.ID, 'main', true), /^127\.0\.0\.1 - - \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 -$/m);
        const ms = startMs(await waitForAlloc(agent, job, () => true, 'the events'));
        if (ms !== undefined) timings.push(ms);
        if (round === 'warm') {
          for (const id of ['python-app-cold', 'python-app-warm']) nomad(agent, ['job', 'stop', id]);
          await waitForAlloc(agent, job, (a) => isDead(a, 'main'), 'the app to stop');
          assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
        }
      }
      t.diagnostic(`start (Received → Started), cold then warm, ${runtime}: ${timings.join(' ms, ')} ms; closure ${python.requisites.length} store paths`);
    });

    it('a wrong checksum fails the artifact download and starts nothing', async () => {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const job = runJob(agent, appJob('python-app-bad-sum', '0'.repeat(64)));
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main') || a.ClientStatus === 'failed', 'the artifact to fail');
      const messages = eventMessages(alloc, 'main');
      assert.equal(
        taskState(alloc, 'main')?.Events.some((e) => e.Type === 'Started'),
        false,
        messages,
      );
      assert.match(messages, /Failed Artifact Download: .*[Cc]hecksums did not match/, messages);
      nomad(agent, ['job', 'stop', '-purge', job]);
    });
  });

/**
 * Issue 13: time zones and CA certificates from the closure, through Nomad on both runtimes.
 *   - A task with `TZ = "America/New_York"` and `TZDIR` pointing into the closure's zoneinfo
 *     (data group `tzdata` of the Python closure, test/support/python-closure.ts) prints local
 *     times with Python's `time.strftime`, equal to the host's `TZ=… date`; without TZDIR glibc
 *     looks in /usr/share/zoneinfo, which the task's root does not have, and falls back to UTC.
 *   - A TLS client (Debian's `openssl s_client`, as a closure) verifies a localhost server's
 *     certificate against the CA bundle of its closure (data group `ca-certificates`, holding the
 *     CA the test makes with openssl), and fails with OpenSSL's verify error 20 with a closure
 *     without it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DebianClosure } from '../../test/support/debian-closure.js';
import { opensslClosure, pythonClosure } from '../../test/support/python-closure.js';
import { hcl, nixJobHcl, storeConfig } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isDead, runJob, taskState, waitForAlloc } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary } from '../support/nomad-agent.js';
import { RUNTIMES, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

/** Two instants, one in winter (EST) and one in summer (EDT). */
const INSTANTS = [1700000000, 1690000000];
const FORMAT = '%Y-%m-%d %H:%M:%S %Z %z';
const TZ_SCRIPT = `import time\nfor t in (${INSTANTS.join(', ')}): print(time.strftime(${JSON.stringify(FORMAT)}, time.localtime(t)))\nprint(time.strftime("%Z"))\n`;

let python: DebianClosure;
let withCa: DebianClosure;
let withoutCa: DebianClosure;
let pki: string;
let server: Server;
let port: number;

before(async () => {
  nomadBinary();
  python = pythonClosure();
  // the test's own CA and a server certificate for localhost signed by it
  pki = mkdtempSync(join(tmpdir(), 'nix-e2e-pki-'));
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: pki, stdio: ['ignore', 'pipe', 'pipe'] });
  ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=nomad-driver-nix e2e CA']);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(pki, 'ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext']);
  withCa = opensslClosure(join(pki, 'ca.pem'));
  withoutCa = opensslClosure();
  server = createServer({ key: readFileSync(join(pki, 'server.key')), cert: readFileSync(join(pki, 'server.pem')) }, (_request, response) => {
    response.end('tls ok\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  port = address.port;
});

after(() => {
  server?.close();
  if (pki !== undefined) rmSync(pki, { recursive: true, force: true });
});

const hostDate = (instant: number) =>
  execFileSync('date', ['-d', `@${instant}`, `+${FORMAT}`], { env: { ...process.env, TZ: 'America/New_York' }, encoding: 'utf8' }).trim();

const sClient = (closure: DebianClosure, env: string) =>
  `${storeConfig(closure.path, 'bin/openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-verify_hostname', 'localhost', '-verify_return_error', '-brief'])}\n${env}`;

for (const runtime of RUNTIMES)
  describe(`time zones and CA certificates from the closure through Nomad (${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent | undefined;
    before(async () => {
      taskAgent = await startTaskAgent(`tz-tls-${runtime}`, { runtime });
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
    });

    /** Runs a batch task to its end: its alloc, stdout and stderr. */
    async function batch(id: string, config: string, taskExtra: string) {
      assert.ok(taskAgent !== undefined);
      const { agent } = taskAgent;
      const job = runJob(agent, nixJobHcl({ id, config, taskExtra }));
      const alloc = await waitForAlloc(agent, job, (a) => isDead(a, 'main'), `${id} to finish`);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
      return { alloc, stdout: allocLogs(agent, alloc.ID, 'main'), stderr: allocLogs(agent, alloc.ID, 'main', true), events: eventMessages(alloc, 'main') };
    }

    it('TZ = "America/New_York" with TZDIR in the closure prints the host’s local times; without TZDIR, UTC', async () => {
      const config = storeConfig(python.path, 'bin/python3', ['-c', TZ_SCRIPT]);
      const env = (tzdir: boolean) =>
        `      env {\n        PYTHONHOME = ${hcl(python.path)}\n        TZ         = "America/New_York"\n${tzdir ? `        TZDIR      = ${hcl(`${python.path}/share/zoneinfo`)}\n` : ''}      }\n`;
      const zoned = await batch('tz', config, env(true));
      assert.equal(zoned.alloc.ClientStatus, 'complete', zoned.events + zoned.stderr);
      const now = execFileSync('date', ['+%Z'], { env: { ...process.env, TZ: 'America/New_York' }, encoding: 'utf8' }).trim();
      assert.equal(zoned.stdout, `${INSTANTS.map(hostDate).join('\n')}\n${now}\n`);
      assert.deepEqual(INSTANTS.map(hostDate), ['2023-11-14 17:13:20 EST -0500', '2023-07-22 00:26:40 EDT -0400']);
      const bare = await batch('tz-no-tzdir', config, env(false));
      assert.equal(bare.alloc.ClientStatus, 'complete', bare.events + bare.stderr);
      assert.equal(bare.stdout, '2023-11-14 22:13:20 America +0000\n2023-07-22 04:26:40 America +0000\nAmerica\n');
    });

    it('openssl s_client verifies the server against the closure’s CA bundle, and fails with verify error 20 without it', async () => {
      const bundle = `${withCa.path}/etc/ssl/certs/ca-certificates.crt`;
      assert.equal(readFileSync(bundle, 'utf8'), readFileSync(join(pki, 'ca.pem'), 'utf8'));
      const verified = await batch('tls', sClient(withCa, ''), `      env {\n        SSL_CERT_FILE = ${hcl(bundle)}\n      }\n`);
      assert.equal(verified.alloc.ClientStatus, 'complete', verified.events + verified.stderr);
      const lines = verified.stderr.split('\n');
      assert.ok(lines.includes('Verification: OK'), verified.stderr);
      assert.ok(lines.includes('Verified peername: localhost'), verified.stderr);
      assert.ok(lines.includes('Peer certificate: CN = localhost'), verified.stderr);

      const refused = await batch('tls-no-ca', sClient(withoutCa, ''), '');
      assert.equal(refused.alloc.ClientStatus, 'failed', refused.events + refused.stderr);
      assert.equal(taskState(refused.alloc, 'main')?.Events.find((e) => e.Type === 'Terminated')?.ExitCode, 1);
      assert.match(refused.stderr, /^verify error:num=20:unable to get local issuer certificate$/m);
      assert.match(refused.stderr, /:error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:/);
      assert.equal(refused.stderr.includes('Verification: OK'), false);
    });
  });

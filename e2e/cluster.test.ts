/**
 * Issue 14, item 6: shipping a closure to a fleet. One Nomad server and four clients on test
 * hosts of this machine (e2e/support/netns.ts): each client in its own network namespace
 * (veth to a bridge, its own 10.231.14.x address) and its own private, initially empty Nix
 * store and database (a mount namespace with its own /nix), so every client really
 * substitutes. The binary cache is served over HTTP on the bridge's address.
 *
 *   c1  bwrap  cache  trusts test-1 and other-1   (busybox copied in beforehand)
 *   c2  runc   cache  trusts test-1 and other-1
 *   c3  bwrap  cache  trusts test-1 only
 *   c4  runc   no cache configured, trusts test-1  (closures arrive as artifacts)
 *
 * The test builds a closure once on the machine's own store, signs it with a key it generated
 * and pushes it to the cache; a `count = 6` job spread over c1–c3 runs on all three, each
 * fetching each NAR it lacks exactly once (the cache's request log, by client address) and
 * holding the closure valid in its own store; c3 refuses a path signed by other-1; a tampered
 * NAR fails clearly on c1; a closure shipped as an artifact runs on c4. The last test tears
 * everything down (agents, tasks, mounts, namespaces, bridge) and checks nothing is left.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CacheServer, type SigningKey, generateKey, makeCacheDir, narinfo, pushToCache, serveCache, tamperNar } from '../test/support/binary-cache.js';
import { buildWithBusybox, busyboxPath } from '../test/support/nix-fixtures.js';
import { hcl, nixJobHcl } from './support/job-hcl.js';
import { type Allocation, allocLogs, eventMessages, runJob } from './support/jobs.js';
import { killTasksOf, leftovers } from './support/leftovers.js';
import { type Bridge, type TestHost, addHost, createBridge, inMountNamespaceOf, networkLeftovers, removeNetwork } from './support/netns.js';
import { NomadAgent, nomadBinary, processesMentioning } from './support/nomad-agent.js';
import type { RuntimeName } from './support/task-agent.js';

/** Where the plugin keeps its state and GC roots inside a client's private /nix (the store's file system, for views). */
const STATE_DIR = '/nix/var/nomad-driver-nix-e2e';
const GC_ROOTS_DIR = '/nix/var/nix/gcroots/nomad-driver-nix-e2e';
const PLUGIN_BLOCK = `the client's plugin "nix" { config { ... } } block`;

interface Client {
  readonly name: string;
  readonly runtime: RuntimeName;
  readonly useCache: boolean;
  readonly trustsOther: boolean;
  host: TestHost;
  agent: NomadAgent;
}

interface PlacedAllocation extends Allocation {
  readonly NodeID: string;
  readonly NodeName: string;
}

const SPECS: readonly Pick<Client, 'name' | 'runtime' | 'useCache' | 'trustsOther'>[] = [
  { name: 'c1', runtime: 'bwrap', useCache: true, trustsOther: true },
  { name: 'c2', runtime: 'runc', useCache: true, trustsOther: true },
  { name: 'c3', runtime: 'bwrap', useCache: true, trustsOther: false },
  { name: 'c4', runtime: 'runc', useCache: false, trustsOther: false },
];

const tag = randomBytes(2).toString('hex');
let work: string;
let key: SigningKey;
let otherKey: SigningKey;
let cacheDir: string;
let server: CacheServer | undefined;
let bridge: Bridge | undefined;
let nomadServer: NomadAgent | undefined;
const clients: Client[] = [];
let tornDown = false;

const client = (name: string): Client => {
  const found = clients.find((c) => c.name === name);
  if (found === undefined) throw new Error(`no client ${name}`);
  return found;
};

/** A fresh store path whose bin/hello prints `payload-<nonce>`, built on the machine's store. */
function freshApp(): { path: string; payload: string } {
  const nonce = randomBytes(6).toString('hex');
  const payload = `payload-${nonce}`;
  const path = buildWithBusybox(
    `cluster-${nonce}`,
    `mkdir -p $out/bin && printf '#!%s/bin/sh\\necho ${payload}\\n' "$busybox" > $out/bin/hello && chmod +x $out/bin/hello`,
  );
  return { path, payload };
}

const appConfig = (path: string, extra = '') => `        store_path = ${hcl(path)}\n        command    = "bin/hello"${extra}`;
const onNode = (name: string) => `    constraint {\n      attribute = "\${node.unique.name}"\n      value     = ${hcl(name)}\n    }\n`;

/** Whether every one of `paths` is valid in the client's own store (its mount namespace). */
function validOn(c: Client, paths: readonly string[]): boolean {
  return inMountNamespaceOf(c.agent.pid, ['nix-store', '--check-validity', ...paths]).status === 0;
}

/** The job's allocations once `count` of them are complete or failed. */
async function finishedAll(job: string, count: number): Promise<PlacedAllocation[]> {
  const agent = nomadServer as NomadAgent;
  return agent.waitFor(
    `${count} allocations of ${job} to finish`,
    async () => {
      const stubs = await agent.api<{ ID: string }[]>(`/v1/job/${job}/allocations`);
      if (stubs.length < count) return undefined;
      const allocs = await Promise.all(stubs.map((s) => agent.api<PlacedAllocation>(`/v1/allocation/${s.ID}`)));
      return allocs.every((a) => a.ClientStatus === 'complete' || a.ClientStatus === 'failed') ? allocs : undefined;
    },
    300_000,
  );
}

/** What the plugin of `c` still holds for the allocation (host-side paths of its private /nix). */
const leftoversOn = (c: Client, allocId: string): string[] =>
  leftovers({ stateDir: join(c.host.nixDir, STATE_DIR.slice('/nix/'.length)), gcRootsDir: join(c.host.nixDir, GC_ROOTS_DIR.slice('/nix/'.length)) }, allocId);

/** Runs a one-allocation job pinned to client `name`; it must fail with `message` among its events and leave nothing. */
async function refusedOn(name: string, id: string, config: string, message: string): Promise<void> {
  const job = runJob(nomadServer as NomadAgent, nixJobHcl({ id, config, groupExtra: onNode(name) }));
  const [alloc] = await finishedAll(job, 1);
  assert.ok(alloc !== undefined);
  const events = eventMessages(alloc, 'main');
  assert.equal(alloc.NodeName, name);
  assert.equal(alloc.ClientStatus, 'failed', events);
  assert.ok(events.includes(message), `expected the event\n  ${message}\nin\n${events}`);
  const c = client(name);
  await (nomadServer as NomadAgent)
    .waitFor('the driver to release everything', async () => (leftoversOn(c, alloc.ID).length === 0 ? true : undefined), 30_000)
    .catch(() => undefined);
  assert.deepEqual(leftoversOn(c, alloc.ID), []);
}

/** Stops every job, the agents, their tasks, and removes the namespaces, the bridge and the files. */
async function tearDown(): Promise<void> {
  if (tornDown) return;
  tornDown = true;
  const allocs = nomadServer === undefined ? [] : await nomadServer.api<{ ID: string }[]>('/v1/allocations').catch(() => []);
  await nomadServer?.stopAllJobs().catch(() => undefined);
  for (const c of clients) await c.agent.stop().catch(() => undefined);
  await nomadServer?.stop().catch(() => undefined);
  killTasksOf(new Set(allocs.map((a) => a.ID)));
  for (const c of clients) c.agent.cleanup();
  nomadServer?.cleanup();
  await server?.close();
  if (bridge !== undefined) removeNetwork(bridge);
  if (work !== undefined && process.env.NOMAD_DRIVER_NIX_KEEP_E2E !== '1') rmSync(work, { recursive: true, force: true });
}

describe('a server, four clients with private stores in their own network namespaces, one signed binary cache', { timeout: 1_200_000 }, () => {
  before(async () => {
    nomadBinary();
    busyboxPath();
    work = mkdtempSync(join(tmpdir(), 'nix-e2e-cluster-'));
    key = generateKey(join(work, 'keys'), 'test-1');
    otherKey = generateKey(join(work, 'keys'), 'other-1');
    cacheDir = makeCacheDir(join(work, 'cache'));
    bridge = createBridge(`nxc${tag}br`);
    server = await serveCache(cacheDir, bridge.address);
    nomadServer = await NomadAgent.start({
      cluster: { role: 'server', name: 'server', bind: bridge.address, networkInterface: bridge.name },
    });
    for (const [index, spec] of SPECS.entries()) {
      const host = addHost(bridge, `nxc${tag}${spec.name}`, 11 + index, join(work, spec.name));
      const trusted = [key.publicKey, ...(spec.trustsOther ? [otherKey.publicKey] : [])];
      const agent = await NomadAgent.start({
        cluster: {
          role: 'client',
          name: spec.name,
          bind: host.address,
          networkInterface: host.interface,
          servers: [`${bridge.address}:${nomadServer.ports.rpc}`],
        },
        wrapper: host.wrap([]),
        pluginConfig: [
          `    state_dir    = ${hcl(STATE_DIR)}`,
          `    gc_roots_dir = ${hcl(GC_ROOTS_DIR)}`,
          `    runtime      = ${hcl(spec.runtime)}`,
          `    substituters = [${spec.useCache ? hcl(server.url) : ''}]`,
          `    trusted_public_keys = [${trusted.map(hcl).join(', ')}]`,
        ].join('\n'),
      });
      clients.push({ ...spec, host, agent });
    }
    for (const c of clients) {
      await c.agent.nixDriver((d) => d.Healthy, 180_000);
      await nomadServer.waitFor(
        `node ${c.name} to be ready with a healthy nix driver`,
        async () => {
          const nodes = await (nomadServer as NomadAgent).api<{ Name: string; Status: string; Drivers: Record<string, { Healthy: boolean }> }[]>(
            '/v1/nodes?resources=false',
          );
          const node = nodes.find((n) => n.Name === c.name);
          return node?.Status === 'ready' && node.Drivers?.nix?.Healthy === true ? true : undefined;
        },
        180_000,
      );
    }
  });
  after(tearDown);

  it('runs a count = 6 job on c1, c2 and c3, each fetching from the cache exactly the NARs it lacks, once', async () => {
    const { path, payload } = freshApp();
    const busybox = busyboxPath();
    pushToCache(cacheDir, [path, busybox], { sign: key });
    const narOf = (p: string) => `/${narinfo(cacheDir, p).URL}`;
    // c1 already holds busybox (copied in from the cache directory), so it lacks only the app
    const seeded = inMountNamespaceOf(client('c1').agent.pid, [
      'nix',
      'copy',
      '--extra-experimental-features',
      'nix-command',
      '--no-check-sigs',
      '--from',
      `file://${cacheDir}`,
      busybox,
    ]);
    assert.equal(seeded.status, 0, seeded.stderr);
    for (const c of clients) assert.equal(validOn(c, [path]), false, `${c.name} starts without the app`);
    assert.equal(validOn(client('c2'), [busybox]), false, 'c2 starts with an empty store');

    const job = runJob(
      nomadServer as NomadAgent,
      nixJobHcl({
        id: 'fleet',
        count: 6,
        config: appConfig(path),
        groupExtra: `    constraint {\n      attribute = "\${node.unique.name}"\n      operator  = "regexp"\n      value     = "^c[123]$"\n    }\n    spread {\n      attribute = "\${node.unique.name}"\n    }\n`,
      }),
    );
    const allocs = await finishedAll(job, 6);
    for (const alloc of allocs) {
      assert.equal(alloc.ClientStatus, 'complete', `${alloc.NodeName}: ${eventMessages(alloc, 'main')}`);
      assert.equal(allocLogs(nomadServer as NomadAgent, alloc.ID, 'main').trim(), payload);
    }
    assert.deepEqual([...new Set(allocs.map((a) => a.NodeName))].sort(), ['c1', 'c2', 'c3']);
    const nodeIds = new Set(allocs.map((a) => a.NodeID));
    assert.equal(nodeIds.size, 3);

    const narFetches = (c: Client, nar: string) => (server as CacheServer).requestLog.filter((r) => r.from === c.host.address && r.path === nar).length;
    const fetched = Object.fromEntries(clients.map((c) => [c.name, [narFetches(c, narOf(path)), narFetches(c, narOf(busybox))]]));
    assert.deepEqual(fetched, { c1: [1, 0], c2: [1, 1], c3: [1, 1], c4: [0, 0] }, 'NAR fetches per client: [app, busybox]');
    for (const name of ['c1', 'c2', 'c3']) assert.equal(validOn(client(name), [path, busybox]), true, `the closure is valid in ${name}'s own store`);
    assert.equal(validOn(client('c4'), [busybox]), false, "c4's store is its own");
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(work), 'no mount of the clients is in the host namespace');
  });

  it('refuses on c3 a path signed by a key c3 does not trust, naming the path, the cache and the fix', async () => {
    const { path } = freshApp();
    pushToCache(cacheDir, [path], { sign: otherKey });
    await refusedOn(
      'c3',
      'untrusted',
      appConfig(path),
      `failed to realise store path ${JSON.stringify(path)}: '${path}' from '${server?.url}' is not signed by a trusted key: it has only signatures of other-1 (trusted: test-1), and require_signatures is on; nothing of it was kept; fix: sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${server?.url} ${path}; nix sign-paths before Nix 2.9), or, if you trust other-1, add its public key to trusted_public_keys in ${PLUGIN_BLOCK}`,
    );
    assert.equal(validOn(client('c3'), [path]), false);
  });

  it('fails clearly on c1 when the cache serves a NAR that does not match its narinfo', async () => {
    const { path, payload } = freshApp();
    pushToCache(cacheDir, [path], { sign: key });
    tamperNar(cacheDir, path, payload, payload.toUpperCase());
    const info = narinfo(cacheDir, path);
    const got = execFileSync('nix-hash', ['--type', 'sha256', '--flat', '--base32', join(cacheDir, info.URL ?? '')], { encoding: 'utf8' }).trim();
    await refusedOn(
      'c1',
      'tampered',
      appConfig(path),
      `failed to realise store path ${JSON.stringify(path)}: the NAR of '${path}' from '${server?.url}' does not match its narinfo (NarHash ${info.NarHash}, the NAR hashes to sha256:${got}): the cache's copy is corrupt or was altered, and nothing of it was kept; fix: push the path to the cache again from a store where it is valid (nix copy --to ${server?.url} ${path}), and check who can write to the cache`,
    );
    assert.equal(validOn(client('c1'), [path]), false);
  });

  it('runs on c4, which has no cache configured, a signed closure shipped as an artifact', async () => {
    const { path, payload } = freshApp();
    const name = `closure-${randomBytes(6).toString('hex')}`;
    const dir = makeCacheDir(join(work, name));
    pushToCache(dir, [path, busyboxPath()], { sign: key });
    const tarball = join(cacheDir, `${name}.tar.gz`);
    execFileSync('tar', ['-czf', tarball, '-C', dir, '.']);
    const checksum = createHash('sha256').update(readFileSync(tarball)).digest('hex');
    const artifact = `      artifact {
        source      = ${hcl(`${server?.url}/${name}.tar.gz`)}
        destination = "local/closure"
        options {
          checksum = ${hcl(`sha256:${checksum}`)}
        }
      }`;
    const job = runJob(
      nomadServer as NomadAgent,
      nixJobHcl({ id: 'artifact', config: appConfig(path, '\n        closure_cache = "local/closure"'), taskExtra: artifact, groupExtra: onNode('c4') }),
    );
    const [alloc] = await finishedAll(job, 1);
    assert.ok(alloc !== undefined);
    assert.equal(alloc.NodeName, 'c4');
    assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
    assert.equal(allocLogs(nomadServer as NomadAgent, alloc.ID, 'main').trim(), payload);
    assert.equal(validOn(client('c4'), [path, busyboxPath()]), true, "the closure is valid in c4's own store");
    const c4 = client('c4').host.address;
    assert.deepEqual(
      (server as CacheServer).requestLog.filter((r) => r.from === c4).map((r) => r.path),
      [`/${name}.tar.gz`],
      'c4 fetched the artifact and nothing else from the cache host',
    );
  });

  it('tears down agents, tasks, mounts, namespaces and the bridge', async () => {
    const net = bridge as Bridge;
    await tearDown();
    assert.deepEqual(networkLeftovers(net), []);
    assert.deepEqual(processesMentioning(work), []);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(work));
  });
});

/**
 * Issue 14, items 1, 2, 3 and 5: signed binary caches, NAR hash pinning, the evaluation policy
 * and fetch progress, through a real agent on both runtimes. No cache is reachable here, so the
 * test makes its own (test/support/binary-cache.ts): a key, a cache directory written by `nix
 * copy`, served over loopback HTTP; each store path is built with a fresh name, pushed, and
 * deleted from the local store so the client must substitute it. The agent trusts the key
 * `test-1` and no cache but the test's, and its Nix configuration (NIX_CONFIG) says
 * `require-sigs = false`, which the plugin's require_signatures overrides.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatBytes } from '../src/nix/progress.js';
import { toSriSha256 } from '../src/nix/nar-hash.js';
import {
  type CacheServer,
  type SigningKey,
  deleteFromStore,
  generateKey,
  isValid,
  makeCacheDir,
  narHashOf,
  narinfo,
  onDisk,
  pushToCache,
  serveCache,
  tamperNar,
} from '../test/support/binary-cache.js';
import { buildWithBusybox, busyboxPath, makeFlake } from '../test/support/nix-fixtures.js';
import { hcl, nixJobHcl } from './support/job-hcl.js';
import { allocLogs, eventMessages, nomad, runJob, type Allocation } from './support/jobs.js';
import { waitForNoLeftovers } from './support/leftovers.js';
import { nomadBinary } from './support/nomad-agent.js';
import { E2E_FLAKES_DIR, RUNTIMES, e2eFlakeDir, startTaskAgent, type TaskAgent } from './support/task-agent.js';

const PLUGIN_BLOCK = `the client's plugin "nix" { config { ... } } block`;
const SHIP = 'build the closure once, sign it and push it to a binary cache this client trusts, then set store_path (README "Shipping closures")';

let work: string;
let key: SigningKey;
let otherKey: SigningKey;
let cacheDir: string;
let server: CacheServer;

before(async () => {
  nomadBinary();
  busyboxPath();
  work = mkdtempSync(join(tmpdir(), 'nix-e2e-trust-'));
  key = generateKey(join(work, 'keys'), 'test-1');
  otherKey = generateKey(join(work, 'keys'), 'other-1');
  cacheDir = makeCacheDir(join(work, 'cache'));
  server = await serveCache(cacheDir);
});
after(async () => {
  await server?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** A fresh store path whose bin/hello prints `payload-<nonce>`; returns it and the payload. */
function freshApp(): { path: string; payload: string } {
  const nonce = randomBytes(6).toString('hex');
  const payload = `payload-${nonce}`;
  const path = buildWithBusybox(
    `trust-${nonce}`,
    `mkdir -p $out/bin && printf '#!%s/bin/sh\\necho ${payload}\\n' "$busybox" > $out/bin/hello && chmod +x $out/bin/hello`,
  );
  return { path, payload };
}

/** The app pushed to the cache (signed by `sign`, if given) and gone from the local store. */
function shippedApp(sign: SigningKey | undefined): { path: string; payload: string } {
  const app = freshApp();
  pushToCache(cacheDir, [app.path], sign === undefined ? {} : { sign });
  deleteFromStore(app.path);
  assert.equal(onDisk(app.path), false);
  return app;
}

/**
 * `path`'s closure as a tarred binary cache (signed by `sign`, if given) served by the test's
 * server, the task's `artifact` block unpacking it into local/closure with its checksum, and
 * the path gone from the local store.
 */
function shipAsArtifact(path: string, sign: SigningKey | undefined): { hcl: string; fileSize: number; narSize: number } {
  const name = `closure-${randomBytes(6).toString('hex')}`;
  const dir = makeCacheDir(join(work, name));
  pushToCache(dir, [path], sign === undefined ? {} : { sign });
  const info = narinfo(dir, path);
  const tarball = join(cacheDir, `${name}.tar.gz`);
  execFileSync('tar', ['-czf', tarball, '-C', dir, '.']);
  const checksum = createHash('sha256').update(readFileSync(tarball)).digest('hex');
  deleteFromStore(path);
  const hclText = `      artifact {
        source      = ${hcl(`${server.url}/${name}.tar.gz`)}
        destination = "local/closure"
        options {
          checksum = ${hcl(`sha256:${checksum}`)}
        }
      }`;
  return { hcl: hclText, fileSize: Number(info.FileSize), narSize: Number(info.NarSize) };
}

/** The allocation's directory below the -dev agent's work dir (`<work dir>/<client dir>/<alloc id>`). */
function findAllocDir(workDir: string, allocId: string): string {
  for (const entry of readdirSync(workDir)) {
    const candidate = join(workDir, entry, allocId);
    if (existsSync(join(candidate, 'main'))) return candidate;
  }
  throw new Error(`no allocation dir of ${allocId} below ${workDir}`);
}

const appConfig = (path: string, extra = '') => `        store_path = ${hcl(path)}\n        command    = "bin/hello"${extra}`;

/** The job's newest allocation in `namespace` once it is complete or failed. */
async function finished(agent: TaskAgent['agent'], job: string, namespace = 'default'): Promise<Allocation> {
  return agent.waitFor(
    `job ${job} to finish`,
    async () => {
      const stubs = await agent.api<{ ID: string; CreateIndex: number }[]>(`/v1/job/${job}/allocations?namespace=${namespace}`);
      const newest = [...stubs].sort((a, b) => b.CreateIndex - a.CreateIndex)[0];
      if (newest === undefined) return undefined;
      const alloc = await agent.api<Allocation>(`/v1/allocation/${newest.ID}?namespace=${namespace}`);
      return alloc.ClientStatus === 'complete' || alloc.ClientStatus === 'failed' ? alloc : undefined;
    },
    180_000,
  );
}

/** Runs a job that must fail with exactly `message` among its events and leave nothing behind. */
async function refused(taskAgent: TaskAgent, id: string, config: string, message: string, namespace = 'default'): Promise<Allocation> {
  const hclText = nixJobHcl({ id, config }).replace(`job "${id}" {`, `job "${id}" {\n  namespace = ${hcl(namespace)}`);
  const job = runJob(taskAgent.agent, hclText);
  const alloc = await finished(taskAgent.agent, job, namespace);
  const events = eventMessages(alloc, 'main');
  assert.equal(alloc.ClientStatus, 'failed', events);
  assert.ok(events.includes(message), `expected the event\n  ${message}\nin\n${events}`);
  assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
  return alloc;
}

for (const runtime of RUNTIMES)
  describe(`signed caches, pinning and the evaluation policy (${runtime})`, { timeout: 900_000 }, () => {
    let taskAgent: TaskAgent;
    const cleanup: string[] = [];
    before(async () => {
      taskAgent = await startTaskAgent(`trust-${runtime}`, {
        runtime,
        pluginConfig: [
          `    trusted_public_keys = [${hcl(key.publicKey)}]`,
          `    flake_namespaces = ["dev"]`,
          `    allowed_flakes = [${hcl(`path:${E2E_FLAKES_DIR}/`)}]`,
        ].join('\n'),
        // the agent's substituters = [] (task-agent.ts) is replaced by the test's cache
        substituters: [server.url],
        // the client's own Nix configuration turns signature checks off, as a developer's
        // machine might: the driver's require_signatures (default on) must win
        env: { NIX_CONFIG: 'require-sigs = false' },
      });
      const created = nomad(taskAgent.agent, ['namespace', 'apply', '-description', 'flakes allowed', 'dev']);
      assert.equal(created.status, 0, created.stderr);
    });
    after(async () => {
      nomad(taskAgent?.agent, ['job', 'stop', '-purge', '-namespace', 'dev', 'dev-flake']);
      await taskAgent?.close();
      for (const path of cleanup) rmSync(path, { recursive: true, force: true });
    });

    it('substitutes a path signed by a trusted key, checks its pinned NAR hash, runs it, and says what it fetched', async () => {
      const { path, payload } = shippedApp(key);
      const info = narinfo(cacheDir, path);
      const pinned = toSriSha256(info.NarHash ?? '');
      assert.ok(pinned !== undefined);
      const job = runJob(taskAgent.agent, nixJobHcl({ id: 'signed', config: appConfig(path, `\n        nar_hash   = ${hcl(pinned)}`) }));
      const alloc = await finished(taskAgent.agent, job);
      const events = eventMessages(alloc, 'main');
      assert.equal(alloc.ClientStatus, 'complete', events);
      assert.equal(allocLogs(taskAgent.agent, alloc.ID, 'main').trim(), payload);
      const fetched = `Fetched 1 store path (${formatBytes(Number(info.FileSize))} download, ${formatBytes(Number(info.NarSize))} unpacked) from ${server.url}`;
      assert.ok(events.includes(`Driver: ${fetched}`), `expected the event\n  ${fetched}\nin\n${events}`);
      assert.equal(narHashOf(path), pinned);
    });

    it('refuses an unsigned path, naming the path, the cache and the fix, and keeps nothing of it', async () => {
      const { path } = shippedApp(undefined);
      await refused(
        taskAgent,
        'unsigned',
        appConfig(path),
        `failed to realise store path ${JSON.stringify(path)}: '${path}' from '${server.url}' is not signed by a trusted key: it has no signature (trusted: test-1), and require_signatures is on; nothing of it was kept; fix: sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${server.url} ${path}; nix sign-paths before Nix 2.9)`,
      );
      assert.equal(onDisk(path), false);
    });

    it('refuses a path signed by a key the client does not trust', async () => {
      const { path } = shippedApp(otherKey);
      await refused(
        taskAgent,
        'unknown-key',
        appConfig(path),
        `failed to realise store path ${JSON.stringify(path)}: '${path}' from '${server.url}' is not signed by a trusted key: it has only signatures of other-1 (trusted: test-1), and require_signatures is on; nothing of it was kept; fix: sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${server.url} ${path}; nix sign-paths before Nix 2.9), or, if you trust other-1, add its public key to trusted_public_keys in ${PLUGIN_BLOCK}`,
      );
      assert.equal(onDisk(path), false);
    });

    it('refuses a signed path whose NAR does not match its narinfo, and removes what Nix unpacked', async () => {
      const { path, payload } = shippedApp(key);
      tamperNar(cacheDir, path, payload, payload.toUpperCase());
      const info = narinfo(cacheDir, path);
      const got = execFileSync('nix-hash', ['--type', 'sha256', '--flat', '--base32', join(cacheDir, info.URL ?? '')], { encoding: 'utf8' }).trim();
      await refused(
        taskAgent,
        'tampered',
        appConfig(path),
        `failed to realise store path ${JSON.stringify(path)}: the NAR of '${path}' from '${server.url}' does not match its narinfo (NarHash ${info.NarHash}, the NAR hashes to sha256:${got}): the cache's copy is corrupt or was altered, and nothing of it was kept; fix: push the path to the cache again from a store where it is valid (nix copy --to ${server.url} ${path}), and check who can write to the cache`,
      );
      assert.equal(onDisk(path), false, 'the half-imported path is gone');
    });

    it('refuses a path already on the client whose NAR hash is not the pinned one, before anything runs', async () => {
      const { path } = freshApp();
      const actual = narHashOf(path);
      const pinned = `sha256-${Buffer.alloc(32, 7).toString('base64')}`;
      await refused(
        taskAgent,
        'pin-mismatch',
        appConfig(path, `\n        nar_hash   = ${hcl(pinned)}`),
        `failed to verify store path ${JSON.stringify(path)}: its NAR hash is ${actual}, not the nar_hash ${pinned} the task pins; nothing of the task ran; fix: set nar_hash to the narHash that nix path-info --json ${path} prints where the closure was built and signed, or find out why this client's copy differs (nix-store --verify-path ${path}; nix path-info --sigs ${path})`,
      );
      assert.equal(isValid(path), true, 'a path that was valid before stays valid');
    });

    it('lets only the namespaces in flake_namespaces use flakes, and only below allowed_flakes', async () => {
      const dir = e2eFlakeDir();
      cleanup.push(dir);
      const flake = makeFlake(
        dir,
        'hello',
        'mkdir -p $out/bin && printf "#!$busybox/bin/sh\\necho dev flake ran\\n" > $out/bin/hello && chmod +x $out/bin/hello',
      );
      await refused(
        taskAgent,
        'default-flake',
        `        flake   = ${hcl(flake)}\n        command = "bin/hello"`,
        `failed to validate task config: flake ${JSON.stringify(flake)} is not allowed in the namespace "default": the plugin's flake_namespaces lists "dev"; fix: ${SHIP}, or run the job in one of those namespaces, or add "default" to flake_namespaces in ${PLUGIN_BLOCK}`,
      );
      const other = 'github:someone-else/app#web';
      await refused(
        taskAgent,
        'other-flake',
        `        flake   = ${hcl(other)}`,
        `failed to validate task config: flake ${JSON.stringify(other)} does not start with any of the plugin's allowed_flakes (${JSON.stringify(`path:${E2E_FLAKES_DIR}/`)}); fix: use a flake below one of those prefixes, or ${SHIP}, or add its prefix to allowed_flakes in ${PLUGIN_BLOCK}`,
        'dev',
      );
      const hclText = nixJobHcl({ id: 'dev-flake', config: `        flake   = ${hcl(flake)}\n        command = "bin/hello"` }).replace(
        'job "dev-flake" {',
        'job "dev-flake" {\n  namespace = "dev"',
      );
      const alloc = await finished(taskAgent.agent, runJob(taskAgent.agent, hclText), 'dev');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(nomad(taskAgent.agent, ['alloc', 'logs', '-namespace', 'dev', alloc.ID, 'main']).stdout.trim(), 'dev flake ran');
    });
  });

for (const runtime of RUNTIMES)
  describe(`a store-path-only client (allow_flakes = false, ${runtime})`, { timeout: 600_000 }, () => {
    let taskAgent: TaskAgent;
    before(async () => {
      taskAgent = await startTaskAgent(`store-only-${runtime}`, {
        runtime,
        pluginConfig: ['    allow_flakes = false', `    trusted_public_keys = [${hcl(key.publicKey)}]`].join('\n'),
      });
    });
    after(async () => {
      await taskAgent?.close();
    });

    it('refuses every flake and still runs store paths', async () => {
      const flake = `path:${E2E_FLAKES_DIR}/anything#hello`;
      await refused(
        taskAgent,
        'flake',
        `        flake = ${hcl(flake)}`,
        `failed to validate task config: flake ${JSON.stringify(flake)} is not allowed on this client: its plugin config sets allow_flakes = false (store paths only); fix: ${SHIP}, or set allow_flakes = true in ${PLUGIN_BLOCK}`,
      );
      const { path, payload } = freshApp();
      const alloc = await finished(taskAgent.agent, runJob(taskAgent.agent, nixJobHcl({ id: 'store-path', config: appConfig(path) })));
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(allocLogs(taskAgent.agent, alloc.ID, 'main').trim(), payload);
    });

    it('imports a signed closure shipped as an artifact (no cache configured), and a second task of it imports nothing', async () => {
      const { path, payload } = freshApp();
      const artifact = shipAsArtifact(path, key);
      const config = appConfig(path, '\n        closure_cache = "local/closure"');
      const first = await finished(taskAgent.agent, runJob(taskAgent.agent, nixJobHcl({ id: 'artifact', config, taskExtra: artifact.hcl })));
      const events = eventMessages(first, 'main');
      assert.equal(first.ClientStatus, 'complete', events);
      assert.equal(allocLogs(taskAgent.agent, first.ID, 'main').trim(), payload);
      const closureDir = realpathSync(join(findAllocDir(taskAgent.agent.workDir, first.ID), 'main', 'local', 'closure'));
      const fetched = `Fetched 1 store path (${formatBytes(artifact.fileSize)} download, ${formatBytes(artifact.narSize)} unpacked) from file://${closureDir}`;
      assert.ok(events.includes(`Driver: ${fetched}`), `expected the event\n  ${fetched}\nin\n${events}`);
      const second = await finished(taskAgent.agent, runJob(taskAgent.agent, nixJobHcl({ id: 'artifact-again', config, taskExtra: artifact.hcl })));
      const again = eventMessages(second, 'main');
      assert.equal(second.ClientStatus, 'complete', again);
      assert.doesNotMatch(again, /Fetched|Realising/, 'the second task runs the closure already on the client');
    });

    it('refuses an unsigned closure shipped as an artifact, and keeps nothing of it', async () => {
      const { path } = freshApp();
      const artifact = shipAsArtifact(path, undefined);
      const job = runJob(
        taskAgent.agent,
        nixJobHcl({ id: 'artifact-unsigned', config: appConfig(path, '\n        closure_cache = "local/closure"'), taskExtra: artifact.hcl }),
      );
      const alloc = await finished(taskAgent.agent, job);
      const events = eventMessages(alloc, 'main');
      assert.equal(alloc.ClientStatus, 'failed', events);
      const cache = `file://${realpathSync(join(findAllocDir(taskAgent.agent.workDir, alloc.ID), 'main', 'local', 'closure'))}`;
      const message = `failed to realise store path ${JSON.stringify(path)}: '${path}' from '${cache}' is not signed by a trusted key: it has no signature (trusted: test-1), and require_signatures is on; nothing of it was kept; fix: sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${cache} ${path}; nix sign-paths before Nix 2.9)`;
      assert.ok(events.includes(message), `expected the event\n  ${message}\nin\n${events}`);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
      assert.equal(onDisk(path), false);
    });
  });

/**
 * Issue 10, items 3 and 4: job input never makes Nix read the client's files or take an option.
 * Through a real agent on both runtimes (the agent allows local flakes below E2E_FLAKES_DIR
 * only):
 *   (a) a `path:` flake of a root-only directory is refused, and its secret never reaches the
 *       world-readable store;
 *   (b) `flake = "--version"` / `"--impure"` are refused as flakes, not run as Nix options;
 *   (c) a `.drv` as store_path or package is refused, and nothing is built;
 *   (d) a `path:` flake under the allowed directory that is a symlink into a running task's
 *       secrets dir is refused, and those secrets stay out of the store;
 *   (e) a `path:` flake under the allowed directory still runs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath, makeFlake, nixString, NO_SUBSTITUTERS } from '../../test/support/nix-fixtures.js';
import { hcl, hclList, nixJobHcl, shConfig } from '../support/job-hcl.js';
import { allocLogs, eventMessages, isRunning, nomad, runJob, waitForAlloc, type Allocation } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { E2E_FLAKES_DIR, RUNTIMES, e2eFlakeDir, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

const FLAKE_FIX =
  'set flake to a flake installable such as "github:owner/repo#web", "git+https://example.org/repo#web", "nixpkgs#hello" or "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes, in the task\'s config { ... } block';
const NOT_ALLOWED_FIX =
  'build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web", or let jobs use that directory with allow_local_flakes = ["<dir>"] in the client\'s plugin "nix" { config { ... } } block';
const ALLOC_FIX =
  'name a flake outside Nomad\'s data_dir; build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web"';

/** Store paths named `*-source` (what Nix copies a local flake to) holding `secret.txt` with `secret`. */
function storeCopiesOf(secret: string): string[] {
  return readdirSync('/nix/store')
    .filter((name) => name.endsWith('-source'))
    .map((name) => join('/nix/store', name))
    .filter((path) => {
      try {
        return readFileSync(join(path, 'secret.txt'), 'utf8') === secret;
      } catch {
        return false;
      }
    });
}

/** A directory with a valid flake (attribute `x`) and `secret.txt`, as Nix would copy it. */
function writeSecretFlake(dir: string, secret: string): void {
  writeFileSync(join(dir, 'flake.nix'), '{ outputs = { self }: { x = self; }; }\n');
  writeFileSync(join(dir, 'secret.txt'), secret, { mode: 0o600 });
}

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;
let busybox: string;

before(() => {
  nomadBinary();
  busybox = busyboxPath();
});

const failed = (a: Allocation) => a.ClientStatus === 'failed';

async function refused(id: string, config: string, message: string): Promise<Allocation> {
  const job = runJob(agent, nixJobHcl({ id, config }));
  const alloc = await waitForAlloc(agent, job, failed, 'the task to fail');
  const events = eventMessages(alloc, 'main');
  assert.ok(events.includes(message), `expected the event\n  ${message}\nin\n${events}`);
  assert.ok(taskAgent !== undefined);
  assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
  return alloc;
}

for (const runtime of RUNTIMES)
  describe(`job input never makes Nix read the client's files or take options (${runtime})`, { timeout: 900_000 }, () => {
    const cleanup: string[] = [];
    before(async () => {
      taskAgent = await startTaskAgent(`nix-input-${runtime}`, { runtime });
      ({ agent } = taskAgent);
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      for (const path of cleanup) rmSync(path, { recursive: true, force: true });
    });

    it('(a) a path: flake of a root-only directory outside allow_local_flakes is refused, and its secret never reaches the store', async () => {
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'nix-e2e-secret-'))); // mode 0700, root's
      cleanup.push(dir);
      const secret = `secret-${randomBytes(8).toString('hex')}`;
      writeSecretFlake(dir, secret);
      const flake = `path:${dir}#x`;
      await refused(
        'secret-dir',
        `        flake = ${hcl(flake)}`,
        `failed to validate task config: flake ${JSON.stringify(flake)} names ${dir}, a directory of the client, which the plugin's allow_local_flakes does not include (it lists ${E2E_FLAKES_DIR}); fix: ${NOT_ALLOWED_FIX}`,
      );
      assert.deepEqual(storeCopiesOf(secret), []);
    });

    for (const option of ['--version', '--impure']) {
      it(`(b) flake = ${JSON.stringify(option)} is refused as a flake, not passed to Nix as an option`, async () => {
        await refused(
          `option${option}`,
          `        flake = ${hcl(option)}`,
          `failed to validate task config: flake ${JSON.stringify(option)} starts with "-": Nix would read it as a command-line option, not a flake reference; fix: ${FLAKE_FIX}`,
        );
      });
    }

    it('(c) a .drv as store_path or in packages is refused, and nothing is built', async () => {
      const nonce = randomBytes(8).toString('hex');
      const expr = `derivation { name = "nix-input-${nonce}"; system = builtins.currentSystem; builder = "\${builtins.storePath ${nixString(busybox)}}/bin/busybox"; args = [ "sh" "-c" "echo built > $out" ]; }`;
      const drv =
        execFileSync('nix-instantiate', [...NO_SUBSTITUTERS, '-E', expr], { encoding: 'utf8' })
          .trim()
          .split('\n')
          .pop() ?? '';
      const out = execFileSync('nix-store', ['--query', '--outputs', drv], { encoding: 'utf8' }).trim();
      const valid = () => spawnSync('nix-store', ['--check-validity', out]).status === 0;
      assert.equal(valid(), false, 'the output is not built before the test');
      const cause = `is a derivation (.drv), not an output path: the client would build it`;
      await refused(
        'drv',
        `        store_path = ${hcl(drv)}`,
        `failed to validate task config: store_path ${JSON.stringify(drv)} ${cause}; fix: set store_path to a store path such as "/nix/store/<hash>-<name>" in the task's config { ... } block`,
      );
      await refused(
        'drv-package',
        `        store_path = ${hcl(busybox)}\n        command = "bin/true"\n        packages = ${hclList([drv])}`,
        `failed to validate task config: packages[0] ${JSON.stringify(drv)} ${cause}; fix: list store paths such as "/nix/store/<hash>-<name>" in packages`,
      );
      assert.equal(valid(), false, `${out} was built`);
    });

    it("(d) a path: flake under an allowed directory that leads into a task's secrets dir is refused, and the secrets stay out of the store", async () => {
      const job = runJob(agent, nixJobHcl({ id: 'victim', type: 'service', config: shConfig(busybox, 'exec sleep 3600') }));
      const victim = await waitForAlloc(agent, job, (a) => isRunning(a, 'main'), 'the victim task to run');
      const allocDir = findAllocDir(agent.workDir, victim.ID);
      const secrets = join(allocDir, 'main', 'secrets');
      const secret = `secret-${randomBytes(8).toString('hex')}`;
      writeSecretFlake(secrets, secret);
      const flakes = e2eFlakeDir();
      cleanup.push(flakes);
      symlinkSync(secrets, join(flakes, 'link'));
      const flake = `path:${flakes}/link#x`;
      await refused(
        'into-alloc',
        `        flake = ${hcl(flake)}`,
        `failed to validate task config: flake ${JSON.stringify(flake)} resolves to ${realpathSync(secrets)} (symlinks followed), inside Nomad's allocation directories (${realpathSync(dirname(allocDir))}): Nix would copy tasks' secrets into the world-readable store; fix: ${ALLOC_FIX}`,
      );
      assert.deepEqual(storeCopiesOf(secret), []);
      nomad(agent, ['job', 'stop', '-purge', job]);
    });

    it('(e) a path: flake under an allowed directory still builds and runs', async () => {
      const dir = e2eFlakeDir();
      cleanup.push(dir);
      const flake = makeFlake(
        dir,
        'hello',
        'mkdir -p $out/bin && printf "#!$busybox/bin/sh\\necho local flake ran\\n" > $out/bin/hello && chmod +x $out/bin/hello',
      );
      const job = runJob(agent, nixJobHcl({ id: 'allowed', config: `        flake   = ${hcl(flake)}\n        command = "bin/hello"` }));
      const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'complete' || failed(a), 'the flake task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(allocLogs(agent, alloc.ID, 'main').trim(), 'local flake ran');
    });
  });

/** The allocation's directory below the -dev agent's work dir (`$TMPDIR/NomadClient…/<alloc id>`). */
function findAllocDir(workDir: string, allocId: string): string {
  for (const entry of readdirSync(workDir)) {
    const candidate = join(workDir, entry, allocId);
    if (existsSync(join(candidate, 'main', 'secrets'))) return candidate;
  }
  throw new Error(`no allocation dir of ${allocId} below ${workDir}`);
}

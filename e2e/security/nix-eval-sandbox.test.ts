/**
 * Issue 10, item 3 (the part pure evaluation leaves open): a flake a job names, even one in an
 * allowed directory, cannot copy the client's private files into the world-readable store,
 * because Nix evaluates and builds it in a bubblewrap view of the host (src/nix/eval-sandbox.ts).
 * Through a real agent, on each runtime (the runtime does not matter for evaluation), with a
 * root-only (0700) directory holding a secret outside allow_local_flakes:
 *   (a) a flake input `{ url = "path:<dir>"; flake = false; }` that the derivation references;
 *   (b) `builtins.fetchTree { type = "path"; path = <dir>; narHash = <wrong>; }` (Nix 2.8
 *       copies before it checks the hash);
 *   (c) `builtins.readFile <dir>/secret.txt` (pure evaluation refuses absolute paths: this one
 *       was already refused before the sandbox, and stays so);
 * each task fails with a clear message and no new store path holds the secret; and
 *   (d) a normal flake in the allowed directory still builds (Nix's own build sandbox works
 *       inside) and runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath, currentSystem, makeFlake, nixString } from '../../test/support/nix-fixtures.js';
import { hcl, nixJobHcl } from '../support/job-hcl.js';
import { allocLogs, eventMessages, runJob, waitForAlloc, type Allocation } from '../support/jobs.js';
import { waitForNoLeftovers } from '../support/leftovers.js';
import { nomadBinary, type NomadAgent } from '../support/nomad-agent.js';
import { RUNTIMES, e2eFlakeDir, startTaskAgent, type TaskAgent } from '../support/task-agent.js';

const HIDDEN_FIX = "fetch the flake's inputs from the network (github:, git+https:, https:) or from a directory listed in the client's allow_local_flakes";

/** Every file below `path` (a store path) whose content includes `secret`. */
function filesWith(path: string, secret: string): string[] {
  try {
    const info = statSync(path);
    if (info.isDirectory()) return readdirSync(path).flatMap((name) => filesWith(join(path, name), secret));
    return info.isFile() && readFileSync(path, 'utf8').includes(secret) ? [path] : [];
  } catch {
    return [];
  }
}

let taskAgent: TaskAgent | undefined;
let agent: NomadAgent;

before(() => {
  nomadBinary();
  busyboxPath();
});

const failed = (a: Allocation) => a.ClientStatus === 'failed';

for (const runtime of RUNTIMES)
  describe(`a job's flake cannot copy the client's private files into the store (${runtime})`, { timeout: 900_000 }, () => {
    const cleanup: string[] = [];
    let secretDir: string;
    let secret: string;
    let storeBefore: Set<string>;
    before(async () => {
      taskAgent = await startTaskAgent(`nix-eval-sandbox-${runtime}`, { runtime });
      ({ agent } = taskAgent);
      secretDir = realpathSync(mkdtempSync(join(tmpdir(), 'nix-e2e-private-'))); // mode 0700, root's
      cleanup.push(secretDir);
      secret = `secret-${randomBytes(8).toString('hex')}`;
      writeFileSync(join(secretDir, 'secret.txt'), secret, { mode: 0o600 });
      storeBefore = new Set(readdirSync('/nix/store'));
    });
    after(async () => {
      await taskAgent?.close();
      taskAgent = undefined;
      for (const path of cleanup) rmSync(path, { recursive: true, force: true });
    });

    /** New store paths since the test started that hold the secret. */
    const storeCopies = () =>
      readdirSync('/nix/store')
        .filter((name) => !storeBefore.has(name))
        .flatMap((name) => filesWith(join('/nix/store', name), secret));

    /** A flake in the allowed directory with `inputs`, whose `x` is a derivation with `src = <src>` (Nix expressions). */
    function writeFlake(inputs: string, args: string, src: string): string {
      const dir = e2eFlakeDir();
      cleanup.push(dir);
      writeFileSync(
        join(dir, 'flake.nix'),
        `{\n  ${inputs}\n  outputs = { ${args} }: { x = derivation { name = "x"; system = ${nixString(currentSystem())}; builder = "/bin/sh"; src = ${src}; }; };\n}\n`,
      );
      return `path:${dir}#x`;
    }

    async function refused(id: string, flake: string, message: string): Promise<void> {
      const job = runJob(agent, nixJobHcl({ id, config: `        flake   = ${hcl(flake)}\n        command = "bin/x"` }));
      const alloc = await waitForAlloc(agent, job, failed, 'the task to fail');
      const events = eventMessages(alloc, 'main');
      assert.ok(events.includes(message), `expected the event\n  ${message}\nin\n${events}`);
      assert.ok(taskAgent !== undefined);
      assert.deepEqual(await waitForNoLeftovers(taskAgent, alloc.ID), []);
      assert.deepEqual(storeCopies(), []);
    }

    const hidden = (flake: string) =>
      `failed to realise flake ${JSON.stringify(flake)}: getting status of '${secretDir}': No such file or directory (a flake's evaluation sees only the Nix store, the allow_local_flakes directories and system files; ${JSON.stringify(secretDir)} is not among them or does not exist); fix: ${HIDDEN_FIX}`;

    it('(a) a flake = false input path:<root-only dir> is not copied: the task fails, the secret stays out of the store', async () => {
      const flake = writeFlake(`inputs.s = { url = ${nixString(`path:${secretDir}`)}; flake = false; };`, 'self, s', 's');
      await refused('path-input', flake, hidden(flake));
    });

    it('(b) builtins.fetchTree of a root-only dir with a wrong narHash copies nothing', async () => {
      const flake = writeFlake(
        '',
        'self',
        `(builtins.fetchTree { type = "path"; path = ${nixString(secretDir)}; narHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; }).outPath`,
      );
      await refused('fetch-tree', flake, hidden(flake));
    });

    it('(c) builtins.readFile of a host file is refused by pure evaluation', async () => {
      const file = join(secretDir, 'secret.txt');
      const flake = writeFlake('', 'self', `builtins.readFile ${nixString(file)}`);
      await refused(
        'read-file',
        flake,
        `failed to realise flake ${JSON.stringify(flake)}: access to absolute path '${file}' is forbidden in pure eval mode (use '--impure' to override); fix: run nix build ${JSON.stringify(flake)} on the client to see the whole error`,
      );
    });

    it('(d) a flake in the allowed directory still builds inside the sandbox and runs', async () => {
      const dir = e2eFlakeDir();
      cleanup.push(dir);
      const flake = makeFlake(
        dir,
        'hello',
        'mkdir -p $out/bin && printf "#!$busybox/bin/sh\\necho sandboxed flake ran\\n" > $out/bin/hello && chmod +x $out/bin/hello',
      );
      const job = runJob(agent, nixJobHcl({ id: 'allowed', config: `        flake   = ${hcl(flake)}\n        command = "bin/hello"` }));
      const alloc = await waitForAlloc(agent, job, (a) => a.ClientStatus === 'complete' || failed(a), 'the flake task to finish');
      assert.equal(alloc.ClientStatus, 'complete', eventMessages(alloc, 'main'));
      assert.equal(allocLogs(agent, alloc.ID, 'main').trim(), 'sandboxed flake ran');
    });
  });

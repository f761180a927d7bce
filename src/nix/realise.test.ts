import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath, makeFlake, NO_SUBSTITUTERS } from '../../test/support/nix-fixtures.js';
import { DriverError } from '../errors.js';
import { deleteFromStore, generateKey, narHashOf as cliNarHash, onDisk, pushToCache, tamperNar } from '../../test/support/binary-cache.js';
import {
  failedDerivation,
  firstFlakeOutput,
  flakeBuildArgs,
  flakeFailure,
  hiddenPathFailure,
  narHashOf,
  realise,
  signaturesOf,
  type NixTools,
} from './realise.js';
import type { FetchSummary } from './progress.js';

const TOOLS: NixTools = { nix: 'nix', nixStore: 'nix-store', extraOptions: NO_SUBSTITUTERS };
const nonce = () => randomBytes(6).toString('hex');
const missingPath = () =>
  `/nix/store/${'0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 20)}${randomBytes(6)
    .toString('hex')
    .replace(/[eotu]/g, '0')}-missing`;

async function rejection(promise: Promise<unknown>): Promise<DriverError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DriverError, `not a DriverError: ${String(error)}`);
    return error;
  }
  assert.fail('expected a rejection');
}

describe('realise', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'realise-test-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  describe('from a file:// binary cache, with signatures required', () => {
    const shipped = (sign: boolean) => {
      const dir = tempDir();
      const key = generateKey(join(dir, 'keys'), 'unit-1');
      const payload = `payload-${nonce()}`;
      const path = buildWithBusybox(`cache-${nonce()}`, `mkdir -p $out && echo ${payload} > $out/f`);
      pushToCache(join(dir, 'cache'), [path], sign ? { sign: key } : {});
      deleteFromStore(path);
      const cache = `file://${join(dir, 'cache')}`;
      const tools: NixTools = {
        ...TOOLS,
        extraOptions: ['--option', 'substituters', cache, '--option', 'trusted-public-keys', key.publicKey, '--option', 'require-sigs', 'true'],
        trustedKeyNames: ['unit-1'],
      };
      return { dir, path, payload, cache, tools };
    };

    it('fetches a signed path and says what it fetched', async () => {
      const { path, tools } = shipped(true);
      const fetched: FetchSummary[] = [];
      const realised = await realise(tools, { storePath: path, packages: [] }, { onFetched: (s) => fetched.push(s) });
      assert.equal(realised.mainOutput, path);
      assert.equal(fetched.length, 1);
      assert.equal(fetched[0]?.paths, 1);
      assert.equal(await narHashOf(tools, path), cliNarHash(path));
    });

    it('refuses an unsigned path, naming the path, the cache and the fix', async () => {
      const { path, cache, tools } = shipped(false);
      const error = await rejection(realise(tools, { storePath: path, packages: [] }));
      assert.equal(
        error.message,
        `failed to realise store path ${JSON.stringify(path)}: '${path}' from '${cache}' is not signed by a trusted key: it has no signature (trusted: unit-1), and require_signatures is on; nothing of it was kept; fix: sign the path in the cache with a key listed in trusted_public_keys (nix store sign --key-file <secret key file> --store ${cache} ${path}; nix sign-paths before Nix 2.9)`,
      );
      assert.equal(error.code, 'failed_precondition');
    });

    it("reruns nix-store --realise when Nix failed on its narinfo disk cache's SQLite race (Nix before 2.13), not on the path", async () => {
      const { dir, path, tools } = shipped(true);
      const fake = join(dir, 'nix-store');
      const calls = join(dir, 'realise-calls');
      // the first --realise fails as Nix 2.8 does when another Nix process raced it on a new cache's row
      writeFileSync(
        fake,
        `#!/bin/sh\ncase " $* " in *" --realise "*)\n  echo x >> ${calls}\n  if [ "$(wc -l < ${calls})" -eq 1 ]; then\n    echo "error: executing SQLite statement 'insert or replace into NARs(cache, hashPart) values (18, 'x')': constraint failed (in '/home/ops/.cache/nix/binary-cache-v6.sqlite')" >&2\n    exit 1\n  fi;;\nesac\nexec nix-store "$@"\n`,
        { mode: 0o755 },
      );
      const realised = await realise({ ...tools, nixStore: fake }, { storePath: path, packages: [] });
      assert.equal(realised.mainOutput, path);
      assert.equal(readFileSync(calls, 'utf8'), 'x\nx\n', 'one failed run, one rerun');
      assert.equal(await narHashOf(tools, path), cliNarHash(path));
    });

    it('refuses a tampered NAR and deletes what Nix unpacked', async () => {
      const { path, payload, cache, dir, tools } = shipped(true);
      tamperNar(join(dir, 'cache'), path, payload, payload.toUpperCase());
      const error = await rejection(realise(tools, { storePath: path, packages: [] }));
      assert.match(
        error.message,
        new RegExp(`^failed to realise store path "${path}": the NAR of '${path}' from '${cache}' does not match its narinfo \\(NarHash sha256:`),
      );
      assert.equal(onDisk(path), false);
    });
  });

  it('reads signatures from nix path-info --json of every Nix version', () => {
    const p = '/nix/store/fkjyhc41l2d10c15dmddmni1267x4adq-x';
    assert.deepEqual(signaturesOf(JSON.stringify([{ path: p, signatures: ['a-1:xx'] }]), p), ['a-1:xx']);
    assert.deepEqual(signaturesOf(JSON.stringify({ [p]: { signatures: ['b-1:yy'] } }), p), ['b-1:yy']);
    assert.deepEqual(signaturesOf(JSON.stringify([{ path: p }]), p), []);
    assert.equal(signaturesOf(JSON.stringify([{ path: p, valid: false }]), p), undefined);
    assert.equal(signaturesOf('not json', p), undefined);
  });

  it('rejects a request with both or neither of flake and store path', async () => {
    const both = await rejection(realise(TOOLS, { flake: 'path:/x#a', storePath: '/nix/store/x', packages: [] }));
    assert.equal(
      both.message,
      'failed to realise task closure: both flake and store_path are set; fix: set exactly one of flake and store_path in the task config',
    );
    assert.equal(both.code, 'invalid_argument');
    const neither = await rejection(realise(TOOLS, { packages: [] }));
    assert.equal(
      neither.message,
      'failed to realise task closure: neither flake nor store_path is set; fix: set exactly one of flake and store_path in the task config',
    );
  });

  it('realises a store path and its packages and lists the closure', async () => {
    const web = buildWithBusybox('realise-web', 'mkdir -p $out/bin; ln -s $busybox/bin/httpd $out/bin/web');
    const tool = buildWithBusybox('realise-tool', 'mkdir -p $out/bin; echo tool > $out/bin/tool');
    const result = await realise(TOOLS, { storePath: web, packages: [tool] });
    assert.deepEqual(result, { mainOutput: web, packageOutputs: [tool], closure: [busyboxPath(), tool, web].sort() });
  });

  it('refuses a .drv, a path inside a store path and an option instead of an output path, running no Nix command', async () => {
    const out = buildWithBusybox('realise-drv', 'mkdir -p $out; echo drv > $out/x');
    const drv = execFileSync('nix-store', ['--query', '--deriver', out], { encoding: 'utf8' }).trim();
    const failing: NixTools = { nix: '/nonexistent/nix', nixStore: '/nonexistent/nix-store', extraOptions: [] };
    for (const [request, shown] of [
      [{ storePath: drv, packages: [] }, drv],
      [{ storePath: out, packages: [drv] }, drv],
      [{ storePath: `${out}/x`, packages: [] }, `${out}/x`],
      [{ storePath: '--query', packages: [] }, '--query'],
      [{ storePath: '/tmp', packages: [] }, '/tmp'],
    ] as const) {
      const error = await rejection(realise(failing, request));
      assert.equal(
        error.message,
        `failed to realise task closure: "${shown}" is not an output store path /nix/store/<hash>-<name> (a .drv is refused); fix: give the output path of a build, e.g. "/nix/store/<hash>-web"`,
      );
      assert.equal(error.code, 'invalid_argument');
    }
  });

  it('refuses a flake that is not a flake installable, running no Nix command', async () => {
    const failing: NixTools = { nix: '/nonexistent/nix', nixStore: '/nonexistent/nix-store', extraOptions: [] };
    const error = await rejection(realise(failing, { flake: '--impure', packages: [] }));
    assert.match(
      error.message,
      /^failed to realise task closure: flake "--impure" starts with "-": Nix would read it as a command-line option, not a flake reference; fix: set flake to/,
    );
  });

  it('answers a valid store path quickly (one nix-store query)', async (t) => {
    const web = buildWithBusybox('realise-web', 'mkdir -p $out/bin; ln -s $busybox/bin/httpd $out/bin/web');
    const times: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      await realise(TOOLS, { storePath: web, packages: [] });
      times.push(performance.now() - started);
    }
    t.diagnostic(`no-op realise of a store path: ${times.map((ms) => ms.toFixed(1)).join(', ')} ms`);
    assert.ok(Math.min(...times) < 1_000);
  });

  it('says which store path is not valid and how to get it', async () => {
    const missing = missingPath();
    const error = await rejection(realise(TOOLS, { storePath: missing, packages: [] }));
    const match =
      /^failed to realise store path "([^"]+)": path '([^']+)' is not valid and no configured substituter has it \(nix: (.+)\); fix: build it on the client, copy it there \(nix copy\), or configure a substituter that has it$/.exec(
        error.message,
      );
    assert.ok(match, error.message);
    assert.equal(match[1], missing);
    assert.equal(match[2], missing);
    assert.ok(match[3]?.includes(missing), match[3]);
    assert.equal(error.code, 'failed_precondition');
  });

  it('names the missing package', async () => {
    const web = buildWithBusybox('realise-web', 'mkdir -p $out/bin; ln -s $busybox/bin/httpd $out/bin/web');
    const missing = missingPath();
    const error = await rejection(realise(TOOLS, { storePath: web, packages: [missing] }));
    assert.match(
      error.message,
      new RegExp(`^failed to realise package "${missing}": path '${missing}' is not valid and no configured substituter has it \\(nix: .+\\); fix: `),
    );
  });

  it('builds a flake output and reports progress', async () => {
    const flake = makeFlake(tempDir(), 'web', `mkdir -p $out/bin; echo ${nonce()} > $out/nonce; ln -s $busybox/bin/httpd $out/bin/web`);
    const progress: string[] = [];
    const result = await realise(TOOLS, { flake, packages: [] }, { onProgress: (m) => progress.push(m) });
    assert.match(result.mainOutput, /^\/nix\/store\/[0-9a-z]{32}-web$/);
    assert.deepEqual(result.packageOutputs, []);
    assert.deepEqual(result.closure, [busyboxPath(), result.mainOutput].sort());
    assert.equal(progress.length, 1);
    assert.match(progress[0] ?? '', /^building \/nix\/store\/[0-9a-z]{32}-web\.drv$/);
  });

  it('builds a flake with packages', async () => {
    const flake = makeFlake(tempDir(), 'web', 'mkdir -p $out; echo web > $out/x');
    const tool = buildWithBusybox('realise-tool', 'mkdir -p $out/bin; echo tool > $out/bin/tool');
    const result = await realise(TOOLS, { flake, packages: [tool] });
    assert.deepEqual(result.packageOutputs, [tool]);
    assert.deepEqual(result.closure, [busyboxPath(), result.mainOutput, tool].sort());
  });

  it('says when a flake does not provide the attribute', async () => {
    const dir = tempDir();
    makeFlake(dir, 'web', 'mkdir $out');
    const flake = `path:${dir}#nope`;
    const error = await rejection(realise(TOOLS, { flake, packages: [] }));
    assert.equal(
      error.message,
      `failed to realise flake "${flake}": flake 'path:${dir}' does not provide attribute 'packages.x86_64-linux.nope', 'legacyPackages.x86_64-linux.nope' or 'nope'; fix: check the flake attribute in the task's config { flake = "${flake}" }`,
    );
    assert.equal(error.code, 'invalid_argument');
  });

  it('says when the flake does not exist', async () => {
    const dir = join(tempDir(), 'absent');
    const flake = `path:${dir}#web`;
    const error = await rejection(realise(TOOLS, { flake, packages: [] }));
    assert.equal(
      error.message,
      `failed to realise flake "${flake}": getting status of '${dir}': No such file or directory; fix: check the flake reference in the task's config { flake = "${flake}" }`,
    );
    assert.equal(error.code, 'invalid_argument');
  });

  it('quotes the failed build and its last log lines', async () => {
    const flake = makeFlake(tempDir(), 'broken', 'echo compiling; echo "it broke" >&2; exit 3');
    const error = await rejection(realise(TOOLS, { flake, packages: [] }));
    const drv = /builder for '([^']+)'/.exec(error.message)?.[1] ?? '';
    assert.match(drv, /^\/nix\/store\/[0-9a-z]{32}-broken\.drv$/);
    assert.equal(
      error.message,
      `failed to realise flake "${flake}": builder for '${drv}' failed with exit code 3 (last 2 log lines: compiling | it broke); fix: fix the build of ${drv} (its whole log: nix-store --read-log ${drv})`,
    );
    assert.equal(error.code, 'failed_precondition');
  });

  it('stops Nix and its builder when cancelled', async () => {
    const marker = nonce();
    const flake = makeFlake(tempDir(), 'slow', `sleep 30; echo ${marker}; mkdir $out`);
    const controller = new AbortController();
    const progress: string[] = [];
    const pending = realise(
      TOOLS,
      { flake, packages: [] },
      {
        signal: controller.signal,
        onProgress: (m) => {
          progress.push(m);
          controller.abort();
        },
      },
    );
    const started = performance.now();
    const error = await rejection(pending);
    assert.equal(error.message, `failed to realise flake "${flake}": cancelled while Nix was running`);
    assert.equal(error.code, 'unavailable');
    assert.ok(performance.now() - started < 5_000);
    await new Promise((r) => setTimeout(r, 300));
    const pgrep = spawnSync('pgrep', ['-f', marker], { encoding: 'utf8' });
    assert.equal(pgrep.stdout.trim(), '', 'the builder still runs');
  });

  it('gives up after the timeout', async () => {
    const flake = makeFlake(tempDir(), 'slow', `sleep 30; echo ${nonce()}; mkdir $out`);
    const error = await rejection(realise(TOOLS, { flake, packages: [] }, { timeoutMs: 1_000 }));
    assert.equal(
      error.message,
      `failed to realise flake "${flake}": Nix did not finish within 1000 ms; fix: build or copy the closure to the client beforehand, or allow more time`,
    );
    assert.equal(error.recoverable, true);
  });
});

describe('realise helpers', () => {
  it('picks the out output of nix build --json, else the first', () => {
    assert.equal(firstFlakeOutput('[{"drvPath":"/nix/store/a.drv","outputs":{"bin":"/nix/store/b-x-bin","out":"/nix/store/b-x"}}]'), '/nix/store/b-x');
    assert.equal(firstFlakeOutput('[{"drvPath":"/nix/store/a.drv","outputs":{"bin":"/nix/store/b-x-bin"}}]'), '/nix/store/b-x-bin');
    assert.equal(firstFlakeOutput('[]'), undefined);
    assert.equal(firstFlakeOutput('not json'), undefined);
  });

  it("builds a flake with options first, the safety options after the plugin's, and the installable after --", () => {
    assert.deepEqual(flakeBuildArgs({ extraOptions: ['--option', 'accept-flake-config', 'true'] }, '--version'), [
      'build',
      '--no-link',
      '--json',
      '--extra-experimental-features',
      'nix-command flakes',
      '--log-format',
      'internal-json',
      '--option',
      'accept-flake-config',
      'true',
      '--option',
      'accept-flake-config',
      'false',
      '--option',
      'pure-eval',
      'true',
      '--no-write-lock-file',
      '--',
      '--version',
    ]);
  });

  it('finds the failed derivation in Nix errors', () => {
    assert.equal(failedDerivation("builder for '/nix/store/a-web.drv' failed with exit code 3"), '/nix/store/a-web.drv');
    assert.equal(failedDerivation("1 dependencies of derivation '/nix/store/b-app.drv' failed to build"), '/nix/store/b-app.drv');
    assert.equal(failedDerivation('attribute missing'), undefined);
  });

  it('classifies flake failures', () => {
    const what = 'realise flake "path:/x#a"';
    assert.equal(
      flakeFailure(what, 'path:/x#a', "path '/x' does not contain a 'flake.nix', searching up").message,
      `failed to realise flake "path:/x#a": path '/x' does not contain a 'flake.nix', searching up; fix: check the flake reference in the task's config { flake = "path:/x#a" }`,
    );
    assert.equal(flakeFailure(what, 'path:/x#a', "path '/x' does not contain a 'flake.nix'").code, 'invalid_argument');
    const evalError = flakeFailure(what, 'path:/x#a', "undefined variable 'foo' at /nix/store/x-source/flake.nix:3:5");
    assert.equal(evalError.code, 'failed_precondition');
    assert.equal(
      evalError.message,
      `failed to realise flake "path:/x#a": undefined variable 'foo' at /nix/store/x-source/flake.nix:3:5; fix: run nix build "path:/x#a" on the client to see the whole error`,
    );
  });

  it('explains a host path the flake sandbox hides', () => {
    const what = 'realise flake "path:/srv/f#x"';
    const text = "getting status of '/srv/keys': No such file or directory";
    const error = hiddenPathFailure(what, text);
    assert.equal(error?.code, 'invalid_argument');
    assert.equal(
      error?.message,
      `failed to realise flake "path:/srv/f#x": getting status of '/srv/keys': No such file or directory (a flake's evaluation sees only the Nix store, the allow_local_flakes directories and system files; "/srv/keys" is not among them or does not exist); fix: fetch the flake's inputs from the network (github:, git+https:, https:) or from a directory listed in the client's allow_local_flakes`,
    );
    assert.equal(hiddenPathFailure(what, "builder for '/nix/store/a.drv' failed"), undefined);
  });
});

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DriverError } from '../errors.js';
import { checkedInstallable, type LocalFlakeContext } from './local-flake.js';

const realPath = async (path: string) => {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
};

async function refusal(promise: Promise<unknown>): Promise<DriverError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DriverError, String(error));
    assert.equal(error.code, 'invalid_argument');
    return error;
  }
  assert.fail('expected a refusal');
}

describe('local flakes on the host', () => {
  // <root>/allowed/{app, out -> <root>/private, alloc-link -> <root>/data/alloc/a1/main}
  // <root>/data/alloc/a1 is the task's alloc dir
  let root: string;
  let context: LocalFlakeContext;
  before(() => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'local-flake-test-')));
    for (const dir of ['allowed/app/sub', 'private', 'data/alloc/a1/main/secrets']) mkdirSync(join(root, dir), { recursive: true });
    symlinkSync(join(root, 'private'), join(root, 'allowed', 'out'));
    symlinkSync(join(root, 'data/alloc/a1/main'), join(root, 'allowed', 'alloc-link'));
    symlinkSync(join(root, 'private'), join(root, 'allowed', 'app', 'escape'));
    context = { allowLocalFlakes: [join(root, 'allowed')], allocDir: join(root, 'data/alloc/a1'), realPath };
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const fix =
    'build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web", or let jobs use that directory with allow_local_flakes = ["<dir>"] in the client\'s plugin "nix" { config { ... } } block';
  const allocFix =
    'name a flake outside Nomad\'s data_dir; build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web"';

  it('passes remote flakes as they are', async () => {
    assert.equal(await checkedInstallable('github:owner/repo#web', context), 'github:owner/repo#web');
  });

  it('gives Nix the resolved path of an allowed flake', async () => {
    assert.equal(await checkedInstallable(`path:${root}/allowed/app#web`, context), `path:${root}/allowed/app#web`);
    assert.equal(await checkedInstallable(`path:${root}/allowed/../allowed/app?dir=sub#web`, context), `path:${root}/allowed/app?dir=sub#web`);
    assert.equal(await checkedInstallable(`git+file://${root}/allowed/app`, context), `git+file://${root}/allowed/app`);
  });

  it('refuses every local flake by default', async () => {
    const flake = `path:${root}/allowed/app#web`;
    const error = await refusal(checkedInstallable(flake, { ...context, allowLocalFlakes: [] }));
    assert.equal(
      error.message,
      `failed to validate task config: flake ${JSON.stringify(flake)} names ${root}/allowed/app, a directory of the client, which the plugin's allow_local_flakes does not include (it lists no directory); fix: ${fix}`,
    );
  });

  it('refuses ".." and symlinks leading out of the allowed directory', async () => {
    for (const [flake, real] of [
      [`path:${root}/allowed/../private#x`, `${root}/private`],
      [`path:${root}/allowed/out#x`, `${root}/private`],
      [`git+file://${root}/allowed/out#x`, `${root}/private`],
      [`path:${root}/allowed/app?dir=escape#x`, `${root}/private`],
    ] as const) {
      const error = await refusal(checkedInstallable(flake, context));
      assert.equal(
        error.message,
        `failed to validate task config: flake ${JSON.stringify(flake)} resolves to ${real} (symlinks followed), which the plugin's allow_local_flakes does not include (it lists ${root}/allowed); fix: ${fix}`,
      );
    }
  });

  it('refuses a flake in or around the allocation dirs, even under an allowed directory', async () => {
    const inside = `path:${root}/allowed/alloc-link#x`;
    const error = await refusal(checkedInstallable(inside, context));
    assert.equal(
      error.message,
      `failed to validate task config: flake ${JSON.stringify(inside)} resolves to ${root}/data/alloc/a1/main (symlinks followed), inside Nomad's allocation directories (${root}/data/alloc): Nix would copy tasks' secrets into the world-readable store; fix: ${allocFix}`,
    );
    const around = `path:${root}/data#x`;
    const wide = await refusal(checkedInstallable(around, { ...context, allowLocalFlakes: [root] }));
    assert.equal(
      wide.message,
      `failed to validate task config: flake ${JSON.stringify(around)} names ${root}/data, which holds Nomad's allocation directories (${root}/data/alloc): Nix would copy tasks' secrets into the world-readable store; fix: ${allocFix}`,
    );
  });

  it('refuses a flake directory that does not exist', async () => {
    const flake = `path:${root}/allowed/absent#x`;
    const error = await refusal(checkedInstallable(flake, context));
    assert.equal(
      error.message,
      `failed to validate task config: flake ${JSON.stringify(flake)} names ${root}/allowed/absent, which does not exist on this client; fix: check the path in flake in the task's config { ... } block`,
    );
  });
});

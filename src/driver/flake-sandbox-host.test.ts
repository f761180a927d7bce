import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultPluginConfig } from '../config/plugin-config.js';
import { ROOT_ENTRIES } from '../nix/eval-sandbox.js';
import { flakeSandboxHost } from './start-task.js';

describe('flakeSandboxHost', () => {
  it('refuses to build flakes when bwrap is not on the PATH', async () => {
    const config = { ...defaultPluginConfig(), state_dir: '/nonexistent/state' };
    await assert.rejects(flakeSandboxHost(config, '/usr/bin/nix', '/nonexistent/bin'), {
      message:
        "failed to build flake: bwrap not found on the agent's PATH: flakes are evaluated and built only inside a bubblewrap sandbox that hides the client's files; fix: install bubblewrap on the client, or build the closure elsewhere and set store_path",
      code: 'failed_precondition',
    });
  });

  it('describes the host: bwrap, the entries of / as they are, resolved flake dirs, a root-only HOME below state_dir', async () => {
    const state = mkdtempSync(join(tmpdir(), 'flake-sandbox-host-'));
    try {
      const config = { ...defaultPluginConfig(), state_dir: state, allow_local_flakes: [state, '/nonexistent/flakes'] };
      const host = await flakeSandboxHost(config, '/usr/bin/nix', process.env.PATH);
      assert.match(host.bwrap, /\/bwrap$/);
      assert.equal(host.home, join(state, 'nix-home'));
      assert.equal(statSync(host.home).mode & 0o777, 0o700);
      assert.deepEqual(host.flakeDirs, [state]);
      const expected = ROOT_ENTRIES.flatMap((path) => {
        const info = lstatSync(path, { throwIfNoEntry: false });
        if (info?.isSymbolicLink()) return [{ path, kind: 'symlink', target: realpathSync(path) }];
        return info?.isDirectory() ? [{ path, kind: 'directory' }] : [];
      });
      assert.deepEqual(host.rootEntries, expected);
      assert.ok(host.rootEntries.some((e) => e.path === '/bin'));
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});

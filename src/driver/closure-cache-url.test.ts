import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { closureCacheUrl } from './start-task.js';
import type { TaskRequest } from './task.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An allocation dir with task `web` whose local/closure is a (minimal) binary cache. */
function allocation(): { request: TaskRequest; local: string } {
  const allocDir = realpathSync(mkdtempSync(join(tmpdir(), 'closure-cache-alloc-')));
  dirs.push(allocDir);
  const local = join(allocDir, 'web', 'local');
  mkdirSync(join(local, 'closure', 'nar'), { recursive: true });
  writeFileSync(join(local, 'closure', 'nix-cache-info'), 'StoreDir: /nix/store\n');
  mkdirSync(join(allocDir, 'web', 'secrets'));
  return { request: { allocDir, name: 'web' } as TaskRequest, local };
}

const FIX =
  'unpack a binary cache written by nix copy --to file://<dir> there, e.g. artifact { source = "https://…/closure.tar.gz" destination = "local/closure" } with a checksum, or check closure_cache in the task\'s config { ... } block';

describe('closure_cache on the host', () => {
  it("is the file:// URL of the resolved directory in the task's local/", async () => {
    const { request, local } = allocation();
    assert.equal(await closureCacheUrl(request, 'local/closure'), `file://${local}/closure`);
  });

  it("refuses a symlink that leads out of the task's local/", async () => {
    const { request, local } = allocation();
    symlinkSync('../secrets', join(local, 'out'));
    await assert.rejects(closureCacheUrl(request, 'local/out'), {
      message: `failed to read closure cache: closure_cache "local/out" resolves to ${request.allocDir}/web/secrets, outside the task's local/ (symlinks followed); fix: ${FIX}`,
    });
  });

  it('refuses a missing directory and one that is not a plain cache', async () => {
    const { request, local } = allocation();
    await assert.rejects(closureCacheUrl(request, 'local/none'), {
      message: `failed to read closure cache: closure_cache "local/none" does not exist in the task's directory; fix: ${FIX}`,
    });
    symlinkSync('/etc/passwd', join(local, 'closure', 'nar', 'x.nar'));
    await assert.rejects(closureCacheUrl(request, 'local/closure'), {
      message: `failed to read closure cache: closure_cache "local/closure" holds "nar/x.nar", which is a symlink; a closure cache holds only files and directories; fix: ${FIX}`,
    });
  });
});

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildWithBusybox, busyboxPath } from '../../test/support/nix-fixtures.js';
import { ensureStoreView, listStoreViews, pruneStoreViewLeftovers, removeStoreView, storeViewKey } from './store-view.js';

const STORE = '/nix/store';
const requisites = (path: string) => execFileSync('nix-store', ['--query', '--requisites', path], { encoding: 'utf8' }).trim().split('\n').sort();

/** A temporary directory on the store's file system (views are hardlinks into the store). */
function viewsTempDir(): string {
  const base = statSync(tmpdir()).dev === statSync(STORE).dev ? tmpdir() : '/nix/var';
  return mkdtempSync(join(base, 'store-view-test-'));
}

describe('store views', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = viewsTempDir();
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const closureOf = () => requisites(buildWithBusybox('view-web', 'mkdir -p $out/bin; ln -s $busybox/bin/httpd $out/bin/web; echo web > $out/web.txt'));

  it('keys a closure by the sha256 of its sorted paths', () => {
    const key = storeViewKey(['/nix/store/b-y', '/nix/store/a-x']);
    assert.equal(key, '0fdace6cc8964e2fc823dd7d68af4066');
    assert.equal(storeViewKey(['/nix/store/a-x', '/nix/store/b-y', '/nix/store/a-x']), key);
    assert.equal(storeViewKey(['/nix/store/a-x']), '7519ee2e17f2c098542647cf69e3757b');
    assert.equal(storeViewKey([]), 'e3b0c44298fc1c149afbf4c8996fb924');
  });

  it('builds a view holding exactly the closure, hardlinked, then reuses it', async () => {
    const viewsDir = join(tempDir(), 'views');
    const closure = closureOf();
    const view = await ensureStoreView(viewsDir, closure);
    assert.equal(view.key, storeViewKey(closure));
    assert.equal(view.path, join(viewsDir, view.key));
    assert.equal(view.built, true);
    assert.equal(view.method, 'link');
    assert.ok(view.durationMs > 0);
    assert.deepEqual(readdirSync(view.path).sort(), closure.map((p) => p.slice(STORE.length + 1)).sort());
    const busybox = busyboxPath().slice(STORE.length + 1);
    assert.equal(statSync(join(view.path, busybox, 'bin', 'busybox')).ino, statSync(join(busyboxPath(), 'bin', 'busybox')).ino);
    assert.deepEqual(readdirSync(viewsDir).sort(), [view.key, `${view.key}.complete`]);
    assert.deepEqual(await listStoreViews(viewsDir), [view.key]);

    const again = await ensureStoreView(viewsDir, [...closure].reverse());
    const { method: _method, ...reused } = view;
    assert.deepEqual({ ...again, durationMs: 0 }, { ...reused, built: false, durationMs: 0 });
  });

  it('lets concurrent builders of one view agree on one directory', async () => {
    const viewsDir = join(tempDir(), 'views');
    const closure = closureOf();
    const views = await Promise.all([1, 2, 3].map(() => ensureStoreView(viewsDir, closure)));
    assert.deepEqual(new Set(views.map((v) => v.path)).size, 1);
    assert.ok(views.filter((v) => v.built).length <= 1);
    assert.deepEqual(readdirSync(viewsDir).sort(), [views[0]?.key, `${views[0]?.key}.complete`]);
  });

  it('uses a view whose marker is missing and writes the marker again', async () => {
    const viewsDir = join(tempDir(), 'views');
    const closure = closureOf();
    const view = await ensureStoreView(viewsDir, closure);
    rmSync(join(viewsDir, `${view.key}.complete`));
    assert.deepEqual(await listStoreViews(viewsDir), []);
    const again = await ensureStoreView(viewsDir, closure);
    assert.equal(again.built, false);
    assert.deepEqual(readdirSync(viewsDir).sort(), [view.key, `${view.key}.complete`]);
  });

  it('removes a view and its marker, idempotently', async () => {
    const viewsDir = join(tempDir(), 'views');
    const view = await ensureStoreView(viewsDir, closureOf());
    await removeStoreView(viewsDir, view.key);
    assert.deepEqual(readdirSync(viewsDir), []);
    await removeStoreView(viewsDir, view.key);
    await removeStoreView(join(viewsDir, 'absent'), view.key);
    assert.deepEqual(await listStoreViews(join(viewsDir, 'absent')), []);
    await assert.rejects(removeStoreView(viewsDir, '../x'), {
      message: 'failed to remove store view "../x": it is not a view key (32 hex digits)',
      code: 'invalid_argument',
    });
  });

  it('prunes what interrupted builds and removals left', async () => {
    const viewsDir = join(tempDir(), 'views');
    const view = await ensureStoreView(viewsDir, closureOf());
    mkdirSync(join(viewsDir, `.tmp-${view.key}-000000`));
    mkdirSync(join(viewsDir, `.trash-${view.key}-000000`));
    writeFileSync(join(viewsDir, '0123456789abcdef0123456789abcdef.complete'), '');
    assert.deepEqual(await pruneStoreViewLeftovers(viewsDir), [
      `.tmp-${view.key}-000000`,
      `.trash-${view.key}-000000`,
      '0123456789abcdef0123456789abcdef.complete',
    ]);
    assert.deepEqual(readdirSync(viewsDir).sort(), [view.key, `${view.key}.complete`]);
  });

  it('prunes only the leftovers whose view key the guard lets go (a start holding that key keeps its build)', async () => {
    const viewsDir = join(tempDir(), 'views');
    const view = await ensureStoreView(viewsDir, closureOf());
    const other = '0123456789abcdef0123456789abcdef';
    mkdirSync(join(viewsDir, `.tmp-${view.key}-00aa11`));
    writeFileSync(join(viewsDir, `${other}.complete`), '');
    mkdirSync(join(viewsDir, `.trash-${other}-00bb22`));
    const asked: string[] = [];
    const removed = await pruneStoreViewLeftovers(viewsDir, async (key, remove) => {
      asked.push(key);
      if (key === view.key) return false;
      await remove();
      return true;
    });
    assert.deepEqual(asked.sort(), [view.key, other, other].sort());
    assert.deepEqual(removed, [`.trash-${other}-00bb22`, `${other}.complete`]);
    assert.deepEqual(readdirSync(viewsDir).sort(), [`.tmp-${view.key}-00aa11`, view.key, `${view.key}.complete`]);
  });

  it('refuses a views directory inside the store', async () => {
    const fix = "fix: set the plugin's state_dir to an absolute directory outside /nix/store on the same file system (e.g. /nix/var/lib/nomad-driver-nix)";
    await assert.rejects(ensureStoreView('/nix/store/views', []), {
      message: `failed to prepare store view in "/nix/store/views": the views directory "/nix/store/views" is inside the Nix store /nix/store, whose garbage collection deletes it; ${fix}`,
      code: 'invalid_argument',
    });
    const link = join(tempDir(), 'store-link');
    symlinkSync(STORE, link);
    await assert.rejects(ensureStoreView(join(link, 'views'), []), {
      message: `failed to prepare store view in "${link}/views": the views directory resolves to a directory inside the Nix store /nix/store; ${fix}`,
    });
    await assert.rejects(ensureStoreView('views', []), {
      message: /^failed to prepare store view in "views": the views directory "views" is not an absolute path; /,
    });
    assert.equal(existsSync('/nix/store/views'), false);
  });

  it('refuses paths that are not store paths', async () => {
    const viewsDir = join(tempDir(), 'views');
    for (const bad of ['/nix/store', '/nix/store/', '/nix/store/a/b', '/nix/store/.links', '/tmp/x', '/nix/store/../etc']) {
      await assert.rejects(ensureStoreView(viewsDir, [bad]), {
        message: new RegExp(
          `^failed to prepare store view in "${viewsDir}": "${bad.replace(/\./g, '\\.')}" is not a store path directly below /nix/store; fix: `,
        ),
      });
    }
  });

  it('refuses a views directory on another file system', async (t) => {
    if (!existsSync('/dev/shm') || statSync('/dev/shm').dev === statSync(STORE).dev) return t.skip('no /dev/shm on another file system');
    const viewsDir = mkdtempSync('/dev/shm/store-view-test-');
    dirs.push(viewsDir);
    await assert.rejects(ensureStoreView(viewsDir, [busyboxPath()]), {
      message: `failed to prepare store view in "${viewsDir}": it is on another file system than /nix/store, so store files cannot be hardlinked into it; fix: put the plugin's state_dir on the file system of /nix/store (e.g. below /nix/var)`,
      code: 'failed_precondition',
    });
    assert.deepEqual(readdirSync(viewsDir), []);
  });

  it('builds the view when the store is a read-only self-bind, as on NixOS (EXDEV)', async (t) => {
    if (process.getuid?.() !== 0 || spawnSync('unshare', ['--version']).status !== 0) return t.skip('needs root and unshare');
    const dir = tempDir();
    const viewsDir = join(dir, 'views');
    const closure = closureOf();
    const script = join(dir, 'in-namespace.mjs');
    const storeView = new URL('./store-view.js', import.meta.url).href;
    writeFileSync(
      script,
      `import { link } from 'node:fs/promises';
       import { ensureStoreView } from ${JSON.stringify(storeView)};
       const closure = ${JSON.stringify(closure)};
       const probe = await link(${JSON.stringify(join(busyboxPath(), 'bin', 'busybox'))}, ${JSON.stringify(join(dir, 'probe'))}).then(() => 'linked', (e) => e.code);
       const view = await ensureStoreView(${JSON.stringify(viewsDir)}, closure);
       console.log(JSON.stringify({ probe, view }));`,
    );
    // Everything below happens in a private mount namespace: the host's mounts stay as they are.
    const setup = 'mount --bind /nix/store /nix/store && mount -o remount,bind,ro /nix/store && exec "$0" "$1"';
    const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', setup, process.execPath, script], { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    const { probe, view } = JSON.parse(result.stdout) as { probe: string; view: { path: string; key: string; built: boolean } };
    assert.equal(probe, 'EXDEV', 'link(2) out of the self-bound store fails');
    assert.equal(view.built, true);
    assert.deepEqual(readdirSync(view.path).sort(), closure.map((p) => p.slice(STORE.length + 1)).sort());
    assert.equal(statSync(join(view.path, busyboxPath().slice(STORE.length + 1), 'bin', 'busybox')).ino, statSync(join(busyboxPath(), 'bin', 'busybox')).ino);
    assert.deepEqual(JSON.parse(readFileSync(join(viewsDir, `${view.key}.complete`), 'utf8')), {
      key: view.key,
      paths: closure.length,
      method: 'private-mount-namespace',
    });
    assert.equal(spawnSync('findmnt', ['/nix/store']).status, 1, 'the host has no /nix/store mount');
  });
});

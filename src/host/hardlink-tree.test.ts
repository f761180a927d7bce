import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { link } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DriverError } from '../errors.js';
import { batches, hardlinkCopy, hardlinkTrees, isCrossDeviceError, type LinkFunction } from './hardlink-tree.js';

const exdev = (): Error => Object.assign(new Error("EXDEV: cross-device link not permitted, link 'a' -> 'b'"), { code: 'EXDEV' });

/** A fake store: two "store paths" (a tree with a 0555 dir and a symlink, a single file) and a symlink. */
function makeStore(root: string): { storeDir: string; sources: string[] } {
  const storeDir = join(root, 'store');
  const app = join(storeDir, 'aaa-app');
  mkdirSync(join(app, 'bin'), { recursive: true });
  mkdirSync(join(app, 'share', 'doc'), { recursive: true });
  writeFileSync(join(app, 'bin', 'app'), '#!/bin/sh\necho app\n', { mode: 0o555 });
  writeFileSync(join(app, 'share', 'doc', 'README'), 'docs\n', { mode: 0o444 });
  symlinkSync('../bin/app', join(app, 'share', 'app-link'));
  chmodSync(join(app, 'share', 'doc'), 0o555);
  // Like Nix, which sets every store file's mtime to 1 (s).
  for (const dir of [join(app, 'share', 'doc'), join(app, 'share'), join(app, 'bin'), app]) utimesSync(dir, 1, 1);
  writeFileSync(join(storeDir, 'bbb-file'), 'single file\n', { mode: 0o444 });
  symlinkSync('aaa-app/bin/app', join(storeDir, 'ccc-link'));
  return { storeDir, sources: ['aaa-app', 'bbb-file', 'ccc-link'].map((n) => join(storeDir, n)) };
}

function assertSameTree(source: string, copy: string): void {
  const s = lstatSync(source);
  const c = lstatSync(copy);
  if (s.isDirectory()) {
    assert.ok(c.isDirectory(), copy);
    assert.equal(c.mode, s.mode, `mode of ${copy}`);
    assert.equal(c.mtimeMs, s.mtimeMs, `mtime of ${copy}`);
    assert.deepEqual(readdirSync(copy).sort(), readdirSync(source).sort());
    for (const name of readdirSync(source)) assertSameTree(join(source, name), join(copy, name));
  } else if (s.isSymbolicLink()) {
    assert.ok(c.isSymbolicLink(), copy);
    assert.equal(readlinkSync(copy), readlinkSync(source));
  } else {
    assert.equal(c.ino, s.ino, `${copy} is a hardlink of ${source}`);
  }
}

describe('hardlink trees', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'hardlink-test-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('recreates directories and symlinks and hardlinks files', async () => {
    const root = tempDir();
    const { sources } = makeStore(root);
    const target = join(root, 'view');
    mkdirSync(target);
    assert.equal(await hardlinkTrees(sources, target), 9);
    assert.deepEqual(readdirSync(target).sort(), ['aaa-app', 'bbb-file', 'ccc-link']);
    for (const source of sources) assertSameTree(source, join(target, source.slice(source.lastIndexOf('/') + 1)));
  });

  it('uses link(2) when it works', async () => {
    const root = tempDir();
    const { storeDir, sources } = makeStore(root);
    mkdirSync(join(root, 'view'));
    assert.equal(await hardlinkCopy(storeDir, sources, join(root, 'view')), 'link');
  });

  it('recognises EXDEV', () => {
    assert.equal(isCrossDeviceError(exdev()), true);
    assert.equal(isCrossDeviceError(Object.assign(new Error('x'), { code: 'EACCES' })), false);
    assert.equal(isCrossDeviceError('EXDEV'), false);
  });

  it('falls back to cp -l in a private mount namespace when link(2) says EXDEV', async () => {
    const root = tempDir();
    const { storeDir, sources } = makeStore(root);
    const target = join(root, 'view');
    mkdirSync(target);
    let calls = 0;
    const linkOnceThenExdev: LinkFunction = async (from, to) => {
      calls += 1;
      if (calls > 1) throw exdev();
      await link(from, to);
    };
    assert.equal(await hardlinkCopy(storeDir, sources, target, { link: linkOnceThenExdev, concurrency: 1 }), 'private-mount-namespace');
    assert.deepEqual(readdirSync(target).sort(), ['aaa-app', 'bbb-file', 'ccc-link']);
    for (const source of sources) assertSameTree(source, join(target, source.slice(source.lastIndexOf('/') + 1)));
  });

  it('explains when the fallback cannot link either (another file system)', async (t) => {
    if (!existsSync('/dev/shm') || statSync('/dev/shm').dev === statSync(tmpdir()).dev) return t.skip('no /dev/shm on another file system');
    const shm = mkdtempSync('/dev/shm/hardlink-test-');
    dirs.push(shm);
    const { storeDir, sources } = makeStore(shm);
    const target = join(tempDir(), 'view');
    mkdirSync(target);
    const error = await hardlinkCopy(storeDir, sources, target).catch((e: unknown) => e);
    assert.ok(error instanceof DriverError);
    assert.match(
      error.message,
      new RegExp(
        `^failed to hardlink store paths into ${target}: link\\(2\\) from ${storeDir} fails with EXDEV \\(a separate mount\\), and so does cp -l in a private mount namespace without the store's self-bind: unshare … cp -l exited with code 1: cp: cannot create hard link .*Invalid cross-device link; fix: put the plugin's state_dir on the same file system and mount as ${storeDir} \\(e\\.g\\. below /nix/var\\)$`,
      ),
    );
    assert.equal(error.code, 'failed_precondition');
  });

  it('reports other link errors and stops', async () => {
    const root = tempDir();
    const { storeDir, sources } = makeStore(root);
    const target = join(root, 'view');
    mkdirSync(target);
    let calls = 0;
    const denied: LinkFunction = async () => {
      calls += 1;
      throw Object.assign(new Error('EACCES: permission denied, link'), { code: 'EACCES' });
    };
    await assert.rejects(hardlinkCopy(storeDir, sources, target, { link: denied, concurrency: 1 }), {
      message: `failed to hardlink store paths into ${target}: EACCES: permission denied, link`,
      code: 'failed_precondition',
    });
    assert.equal(calls, 1);
  });

  it('splits long argument lists into batches', () => {
    assert.deepEqual(batches(['aaaa', 'bbbb', 'cccc', 'dddddddddddd'], 10), [['aaaa', 'bbbb'], ['cccc'], ['dddddddddddd']]);
    assert.deepEqual(batches([], 10), []);
  });
});

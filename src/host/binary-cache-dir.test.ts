import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { binaryCacheDirProblem } from './binary-cache-dir.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A cache directory as nix copy writes it: nix-cache-info, one narinfo, its NAR. */
function cacheDir(url = 'nar/0abc.nar'): string {
  const dir = mkdtempSync(join(tmpdir(), 'closure-cache-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'nar'));
  writeFileSync(join(dir, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  writeFileSync(join(dir, 'nar', '0abc.nar'), 'nar');
  writeFileSync(join(dir, 'aaaa.narinfo'), `StorePath: /nix/store/aaaa-x\nURL: ${url}\nCompression: none\n`);
  return dir;
}

describe('closure cache directories', () => {
  it('accepts a plain cache directory', async () => {
    assert.equal(await binaryCacheDirProblem(cacheDir()), undefined);
  });

  it('refuses what is not a cache', async () => {
    const dir = cacheDir();
    rmSync(join(dir, 'nix-cache-info'));
    assert.equal(await binaryCacheDirProblem(dir), 'has no nix-cache-info file: it is not a binary cache as nix copy --to file://… writes it');
    assert.equal(await binaryCacheDirProblem(join(dir, 'missing')), 'is not a directory');
  });

  it('refuses a narinfo URL outside nar/, or naming no file there', async () => {
    assert.equal(
      await binaryCacheDirProblem(cacheDir('nar/../../../etc/shadow')),
      'holds "aaaa.narinfo", whose URL "nar/../../../etc/shadow" is not a file nar/<name> of the closure cache',
    );
    assert.equal(
      await binaryCacheDirProblem(cacheDir('nar/missing.nar')),
      'holds "aaaa.narinfo", whose URL "nar/missing.nar" is not a file nar/<name> of the closure cache',
    );
  });

  it('refuses symlinks and FIFOs', async () => {
    const linked = cacheDir();
    symlinkSync('/etc/shadow', join(linked, 'nar', 'x.nar'));
    assert.equal(await binaryCacheDirProblem(linked), 'holds "nar/x.nar", which is a symlink; a closure cache holds only files and directories');
    const fifo = cacheDir();
    execFileSync('mkfifo', [join(fifo, 'bbbb.narinfo')]);
    assert.equal(
      await binaryCacheDirProblem(fifo),
      'holds "bbbb.narinfo", which is not a regular file or directory; a closure cache holds only files and directories',
    );
  });
});

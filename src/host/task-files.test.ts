import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, open, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createFile, giveFifoTo, openAll } from './task-files.js';

const isRoot = process.getuid?.() === 0;

describe('giveFifoTo', { skip: isRoot ? false : 'chown needs root' }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'task-files-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives a FIFO to the user, keeping its group and mode', async () => {
    const fifo = join(dir, 'stdout.fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    // O_RDWR: opening a FIFO for writing alone would wait for a reader
    const handle = await open(fifo, constants.O_RDWR);
    try {
      assert.equal(await giveFifoTo(handle, 65534), true);
    } finally {
      await handle.close();
    }
    const info = await stat(fifo);
    assert.deepEqual([info.uid, info.gid, info.mode & 0o777], [65534, 0, 0o600]);
  });

  it('leaves anything but a FIFO alone', async () => {
    const file = join(dir, 'plain');
    await writeFile(file, '', { mode: 0o600 });
    const handle = await open(file, 'r+');
    try {
      assert.equal(await giveFifoTo(handle, 65534), false);
    } finally {
      await handle.close();
    }
    assert.equal((await stat(file)).uid, 0);
    const devNull = await open('/dev/null', 'w');
    try {
      assert.equal(await giveFifoTo(devNull, 65534), false);
    } finally {
      await devNull.close();
    }
    assert.equal((await stat('/dev/null')).uid, 0);
  });
});

describe('openAll', () => {
  it('returns every handle when every open succeeds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-open-all-'));
    try {
      const handles = await openAll([() => createFile(join(dir, 'a')), () => createFile(join(dir, 'b'))]);
      assert.equal(handles.length, 2);
      assert.ok(handles.every((h) => h.fd >= 0));
      await Promise.all(handles.map((h) => h.close()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closes the handles that opened when another open fails, and rethrows its error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-open-all-'));
    try {
      let opened: FileHandle | undefined;
      await assert.rejects(openAll([async () => (opened = await createFile(join(dir, 'a'))), () => open(join(dir, 'missing', 'b'), 'r')]), { code: 'ENOENT' });
      assert.equal(opened?.fd, -1, 'closed now, not when collected');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createFile, openAll } from './task-files.js';

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
      await assert.rejects(
        openAll([
          async () => (opened = await createFile(join(dir, 'a'))),
          () => open(join(dir, 'missing', 'b'), 'r'),
        ]),
        { code: 'ENOENT' },
      );
      assert.equal(opened?.fd, -1, 'closed now, not when collected');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

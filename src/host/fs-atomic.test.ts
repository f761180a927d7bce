import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureDirectory, writeJsonFileAtomic } from './fs.js';

describe('writeJsonFileAtomic', () => {
  it('survives many concurrent writers of one file (a closure cached by 20 starts at once)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomic-'));
    try {
      const path = join(dir, 'x.json');
      await Promise.all(Array.from({ length: 40 }, (_, i) => writeJsonFileAtomic(path, { i })));
      assert.equal(typeof (JSON.parse(readFileSync(path, 'utf8')) as { i: number }).i, 'number');
      assert.deepEqual(readdirSync(dir), ['x.json'], 'no temp file left');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ensureDirectory', () => {
  it('creates a directory with its parents; an existing one keeps its mode unless exact is asked for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ensure-dir-'));
    const mode = (path: string) => statSync(path).mode & 0o7777;
    try {
      const made = join(dir, 'a', 'b');
      await ensureDirectory(made, 0o711);
      assert.equal(mode(made), 0o711 & ~process.umask());
      chmodSync(made, 0o755);
      await ensureDirectory(made, 0o711);
      assert.equal(mode(made), 0o755, 'existing: left as it is');
      await ensureDirectory(made, 0o711, { exact: true });
      assert.equal(mode(made), 0o711, 'exact: set');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeJsonFileAtomic } from './fs.js';

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

import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { busyboxPath } from '../../../test/support/nix-fixtures.js';
import { elfInterpreter } from '../../host/which.js';
import { findRuncInit } from './init.js';

const dir = mkdtempSync(join(tmpdir(), 'runc-init-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('findRuncInit', () => {
  it('reads the ELF interpreter: none for a static binary, the loader for a dynamic one', () => {
    assert.equal(elfInterpreter(join(busyboxPath(), 'bin', 'busybox')), undefined);
    assert.match(elfInterpreter('/bin/ls') ?? '', /ld-linux/);
    const script = join(dir, 'script');
    writeFileSync(script, '#!/bin/sh\n');
    assert.equal(elfInterpreter(script), undefined);
  });

  it('finds tini-static on PATH, refuses a dynamic init and a missing one, naming the fix', () => {
    const bin = join(dir, 'bin');
    const empty = join(dir, 'empty');
    for (const d of [bin, empty]) mkdirSync(d, { recursive: true });
    copyFileSync(join(busyboxPath(), 'bin', 'busybox'), join(bin, 'tini-static'));
    chmodSync(join(bin, 'tini-static'), 0o755);
    assert.deepEqual(findRuncInit('', bin), { found: true, path: join(bin, 'tini-static') });
    const missing = findRuncInit('', empty);
    assert.equal(missing.found, false);
    assert.match(
      missing.found ? '' : missing.problem,
      /^tini-static not found on the agent's PATH \(runc tasks need a static init\); fix: install tini-static/,
    );
    const dynamic = findRuncInit('/bin/ls', bin);
    assert.match(
      dynamic.found ? '' : dynamic.problem,
      /^runc init "\/bin\/ls" is dynamically linked \(loader \S*ld-linux\S*\) and cannot run inside a closure-only root; fix: /,
    );
  });
});

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { executableKindInRoot, resolveInRoot } from './which.js';

describe('resolveInRoot / executableKindInRoot', () => {
  let root: string;
  before(() => {
    // a task root: /bin/sh -> busybox, /hostroot -> /, /up -> ../../.., /loop -> loop, /local/wd -> /
    root = mkdtempSync(join(tmpdir(), 'nix-root-'));
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'local'));
    writeFileSync(join(root, 'bin', 'busybox'), '#!/bin/sh\n');
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    writeFileSync(join(root, 'bin', 'data'), 'x');
    symlinkSync('busybox', join(root, 'bin', 'sh'));
    symlinkSync('/', join(root, 'hostroot'));
    symlinkSync('../../..', join(root, 'up'));
    symlinkSync('loop', join(root, 'loop'));
    symlinkSync('/', join(root, 'local', 'wd'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('follows symlinks inside the root', () => {
    assert.equal(resolveInRoot(root, '/bin/sh'), `${root}/bin/busybox`);
    assert.equal(executableKindInRoot(root, '/bin/sh'), 'executable');
    assert.equal(executableKindInRoot(`${root}/`, '/bin/sh'), 'executable');
  });

  it("resolves an absolute symlink and `..` against the root, never the host's /", () => {
    // on the host /hostroot/usr/bin/env exists; in the task it is /usr/bin/env, which does not
    assert.equal(resolveInRoot(root, '/hostroot/bin/sh'), `${root}/bin/busybox`);
    assert.equal(executableKindInRoot(root, '/hostroot/usr/bin/env'), 'missing');
    assert.equal(executableKindInRoot(root, '/local/wd/usr/bin/env'), 'missing');
    assert.equal(executableKindInRoot(root, '/up/usr/bin/env'), 'missing');
    assert.equal(executableKindInRoot(root, '/../../usr/bin/env'), 'missing');
    assert.equal(resolveInRoot(root, '/up/bin/sh'), `${root}/bin/busybox`);
  });

  it('tells missing, looping and non-executable entries apart', () => {
    assert.equal(resolveInRoot(root, '/loop'), undefined);
    assert.equal(executableKindInRoot(root, '/loop'), 'missing');
    assert.equal(executableKindInRoot(root, '/bin/data'), 'not-executable');
    assert.equal(executableKindInRoot(root, '/bin'), 'not-executable');
    assert.equal(executableKindInRoot(root, '/nope'), 'missing');
  });
});

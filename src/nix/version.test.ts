import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRuntimeVersion } from '../runtime/version.js';
import { isSupportedNix, parseNixVersion } from './version.js';

describe('version probes', () => {
  it('recognises Nix and Lix', () => {
    assert.deepEqual(parseNixVersion('nix (Nix) 2.8.0\n'), { implementation: 'Nix', version: '2.8.0', major: 2, minor: 8 });
    assert.deepEqual(parseNixVersion('nix (Lix, like Nix) 2.91.1'), { implementation: 'Lix', version: '2.91.1', major: 2, minor: 91 });
    assert.equal(parseNixVersion('nix (Nix) 2.24.10pre20241013_dirty')?.version, '2.24.10pre20241013_dirty');
    assert.equal(parseNixVersion('bash: nix: command not found'), undefined);
  });

  it('supports Nix 2.4 and newer', () => {
    assert.equal(isSupportedNix(parseNixVersion('nix (Nix) 2.3.16')!), false);
    assert.equal(isSupportedNix(parseNixVersion('nix (Nix) 2.8.0')!), true);
    assert.equal(isSupportedNix(parseNixVersion('nix (Nix) 3.0.0')!), true);
  });

  it('reads bubblewrap and runc versions', () => {
    assert.equal(parseRuntimeVersion('bubblewrap 0.8.0\n'), '0.8.0');
    assert.equal(parseRuntimeVersion('runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n'), '1.1.5+ds1');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeNixBase32, isSriSha256, toSriSha256 } from './nar-hash.js';

describe('NAR hashes', () => {
  // a pair Nix 2.8 printed for the same path: nix-store --query --hash, nix path-info --json
  const base32 = 'sha256:0h2cvvd5bkprq91zyak0149xwqr6p5hc0vw1xrshlzfg6z8dlk29';
  const sri = 'sha256-SUza0DfPfQp17oFvwGC5JmPeEwlgKv9DwvnOVdreTEA=';

  it('converts nix-store --query --hash output to the SRI form nix path-info --json reports', () => {
    assert.equal(toSriSha256(base32), sri);
    assert.equal(toSriSha256(`${base32}\n`), sri);
    assert.equal(toSriSha256('sha256:0yw0f76zzv8n35w9b6yhdzjb11gqzx9y7fgfzrwk030likyzn9j6'), 'sha256-Rib7/YwUDDB5/u6541P/+IWw5G/Qm5V4GRbt/81xgHs=');
  });

  it('passes an SRI hash through and refuses anything else', () => {
    assert.equal(toSriSha256(sri), sri);
    assert.equal(toSriSha256('sha256:xyz'), undefined);
    assert.equal(toSriSha256('sha512:0h2cvvd5bkprq91zyak0149xwqr6p5hc0vw1xrshlzfg6z8dlk29'), undefined);
    assert.equal(toSriSha256('sha256:0h2cvvd5bkprq91zyak0149xwqr6p5hc0vw1xrshlzfg6z8dlk2e'), undefined, 'e is not in the alphabet');
    assert.equal(decodeNixBase32('00'), undefined);
  });

  it('recognises SRI SHA-256 hashes only', () => {
    assert.equal(isSriSha256(sri), true);
    assert.equal(isSriSha256(sri.slice(0, -2)), false);
    assert.equal(isSriSha256(base32), false);
    assert.equal(isSriSha256(`sha512-${'A'.repeat(86)}==`), false);
  });
});

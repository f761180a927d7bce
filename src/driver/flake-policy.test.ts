import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkFlakePolicy, flakeMatchesPrefix } from './flake-policy.js';

const OPEN = { allow_flakes: true, allowed_flakes: [], flake_namespaces: [] };
const WHERE = `the client's plugin "nix" { config { ... } } block`;
const SHIP = 'build the closure once, sign it and push it to a binary cache this client trusts, then set store_path (README "Shipping closures")';

describe('flake evaluation policy', () => {
  it('allows any flake by default', () => {
    assert.doesNotThrow(() => checkFlakePolicy('github:anyone/app#web', 'default', OPEN));
  });

  it('refuses every flake with allow_flakes = false (store paths only)', () => {
    assert.throws(() => checkFlakePolicy('github:my-org/app#web', 'default', { ...OPEN, allow_flakes: false }), {
      message: `failed to validate task config: flake "github:my-org/app#web" is not allowed on this client: its plugin config sets allow_flakes = false (store paths only); fix: ${SHIP}, or set allow_flakes = true in ${WHERE}`,
    });
  });

  it('allows flakes only in the namespaces flake_namespaces lists', () => {
    const config = { ...OPEN, flake_namespaces: ['dev', 'ci'] };
    assert.doesNotThrow(() => checkFlakePolicy('github:a/b', 'dev', config));
    assert.throws(() => checkFlakePolicy('github:a/b', 'prod', config), {
      message: `failed to validate task config: flake "github:a/b" is not allowed in the namespace "prod": the plugin's flake_namespaces lists "dev", "ci"; fix: ${SHIP}, or run the job in one of those namespaces, or add "prod" to flake_namespaces in ${WHERE}`,
    });
  });

  it('allows only references below allowed_flakes, matched at a boundary', () => {
    const config = { ...OPEN, allowed_flakes: ['github:my-org', 'git+https://git.example.org/'] };
    for (const ok of ['github:my-org/app#web', 'github:my-org/app?dir=x', 'git+https://git.example.org/team/app#x']) {
      assert.doesNotThrow(() => checkFlakePolicy(ok, 'default', config), ok);
    }
    assert.throws(() => checkFlakePolicy('github:my-org-evil/app#web', 'default', config), {
      message: `failed to validate task config: flake "github:my-org-evil/app#web" does not start with any of the plugin's allowed_flakes ("github:my-org", "git+https://git.example.org/"); fix: use a flake below one of those prefixes, or ${SHIP}, or add its prefix to allowed_flakes in ${WHERE}`,
    });
    assert.throws(
      () => checkFlakePolicy('git+https://git.example.org.evil.com/x', 'default', config),
      /does not start with any of the plugin's allowed_flakes/,
    );
  });

  it('matches prefixes at reference boundaries only', () => {
    assert.equal(flakeMatchesPrefix('github:my-org/app', 'github:my-org/'), true);
    assert.equal(flakeMatchesPrefix('github:my-org/app', 'github:my-org'), true);
    assert.equal(flakeMatchesPrefix('github:my-org', 'github:my-org'), true);
    assert.equal(flakeMatchesPrefix('github:my-org#x', 'github:my-org'), true);
    assert.equal(flakeMatchesPrefix('github:my-orgx/app', 'github:my-org'), false);
    assert.equal(flakeMatchesPrefix('nixpkgs#hello', 'nixpkgs'), true);
    assert.equal(flakeMatchesPrefix('nixpkgs-evil#hello', 'nixpkgs'), false);
    assert.equal(flakeMatchesPrefix('gitlab:my-org/app', 'github:'), false);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { storeKind } from '../nix/store-health.js';
import { evaluateFingerprint, fingerprintChanged, type HostFacts } from './fingerprint.js';

const healthy: HostFacts = {
  euid: 0,
  nix: { found: true, path: '/usr/bin/nix', implementation: 'Nix', version: '2.8.0' },
  runtime: { found: true, name: 'bwrap', version: '0.8.0' },
  cgroups: { version: 'v1', problem: undefined },
};

describe('fingerprint', () => {
  it('is healthy with every attribute when everything is there', () => {
    const fp = evaluateFingerprint(healthy);
    assert.equal(fp.health, 'healthy');
    assert.equal(fp.description, 'healthy');
    assert.deepEqual(Object.keys(fp.attributes).sort(), [
      'driver.nix',
      'driver.nix.cgroups',
      'driver.nix.nix_implementation',
      'driver.nix.nix_version',
      'driver.nix.runtime',
      'driver.nix.runtime_version',
      'driver.nix.version',
    ]);
    assert.deepEqual(fp.attributes['driver.nix.cgroups'], { kind: 'string', value: 'v1' });
  });

  it('lists every problem with its fix', () => {
    const fp = evaluateFingerprint({
      euid: 1000,
      nix: { found: false, problem: "nix not found on the agent's PATH; fix: install Nix" },
      runtime: { found: false, name: 'runc', problem: "runc not found on the agent's PATH; fix: install runc" },
      cgroups: { version: undefined, problem: 'no cgroup hierarchy found' },
    });
    assert.equal(fp.health, 'unhealthy');
    assert.equal(
      fp.description,
      "the plugin runs as uid 1000, not root, and cannot build task roots, enter cgroups or run tasks as other users; fix: run the Nomad client agent as root; and nix not found on the agent's PATH; fix: install Nix; and runc not found on the agent's PATH; fix: install runc; and no usable cgroups: no cgroup hierarchy found",
    );
    assert.equal(fp.attributes['driver.nix.runtime']?.value, 'runc');
  });

  it('is unhealthy when Nix cannot build: no build users group (Debian nix-bin without setup)', () => {
    const fp = evaluateFingerprint({
      ...healthy,
      nixStore: {
        euid: 0,
        settings: { store: 'auto', buildUsersGroup: 'nixbld', autoAllocateUids: false },
        store: storeKind('auto'),
        stateDirAccessible: true,
        storeDir: { kind: 'dir', writable: true },
        stateDir: { kind: 'dir', writable: true },
        dbDir: { kind: 'dir', writable: true },
        dbFile: { kind: 'file', writable: true },
        buildGroup: { kind: 'missing' },
      },
    });
    assert.equal(fp.health, 'unhealthy');
    assert.match(
      fp.description,
      /^Nix cannot build: the group "nixbld" named by build-users-group does not exist \(Nix running as root without a daemon runs every build as one of that group's members\); fix: create the group and build users in it as Nix's installer does/,
    );
    // the attributes stay: Nomad shows what was found next to the problem
    assert.deepEqual(fp.attributes['driver.nix.nix_version'], { kind: 'string', value: '2.8.0' });
  });

  it('is unhealthy when Nix cannot read its settings', () => {
    const fp = evaluateFingerprint({
      ...healthy,
      nixStore: { problem: "Nix cannot read its settings: boom; fix: correct the client's nix.conf or the plugin's nix_options" },
    });
    assert.equal(fp.health, 'unhealthy');
    assert.equal(fp.description, "Nix cannot read its settings: boom; fix: correct the client's nix.conf or the plugin's nix_options");
  });

  it('notices changes', () => {
    const a = evaluateFingerprint(healthy);
    assert.equal(fingerprintChanged(undefined, a), true);
    assert.equal(fingerprintChanged(a, evaluateFingerprint(healthy)), false);
    assert.equal(fingerprintChanged(a, evaluateFingerprint({ ...healthy, euid: 5 })), true);
  });
});

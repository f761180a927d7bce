import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { nixStoreProblems } from './store-health.js';
import { createNixStoreProbe } from './store-probe.js';

const dir = mkdtempSync(join(tmpdir(), 'store-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A fake `nix` that logs its arguments and prints show-config JSON with the store from --option store. */
function fakeNix(group: string): { nix: string; calls: () => string[] } {
  const log = join(dir, `calls-${group}`);
  const nix = join(dir, `nix-${group}`);
  writeFileSync(
    nix,
    `#!/bin/sh
echo "$*" >> ${log}
store=auto
while [ $# -gt 0 ]; do
  if [ "$1" = --option ] && [ "$2" = store ]; then store=$3; fi
  shift
done
printf '{"store":{"value":"%s"},"build-users-group":{"value":"${group}"},"sandbox":{"value":true}}\\n' "$store"
`,
  );
  chmodSync(nix, 0o755);
  return { nix, calls: () => readFileSync(log, 'utf8').trim().split('\n') };
}

describe('createNixStoreProbe (real files, fake nix)', () => {
  it('finds a database directory that is a file in the store nix_options name', async () => {
    const root = join(dir, 'broken');
    mkdirSync(join(root, 'nix/store'), { recursive: true });
    mkdirSync(join(root, 'nix/var/nix'), { recursive: true });
    writeFileSync(join(root, 'nix/var/nix/db'), 'not a directory');
    const { nix, calls } = fakeNix('');
    const probe = createNixStoreProbe({ env: {} });
    const facts = await probe(nix, ['--option', 'store', root], 0);
    assert.ok(!('problem' in facts));
    assert.deepEqual(facts.store, {
      kind: 'local',
      local: { storeDir: `${root}/nix/store`, stateDir: `${root}/nix/var/nix`, dbDir: `${root}/nix/var/nix/db` },
    });
    assert.deepEqual(nixStoreProblems(facts), [
      `Nix cannot open its store: the database directory "${root}/nix/var/nix/db" is not a directory; fix: move it away so Nix can create the directory, or point the store setting (nix.conf or nix_options) at an intact store`,
    ]);
    assert.deepEqual(calls(), [`--extra-experimental-features nix-command show-config --json --option store ${root}`]);
  });

  it('finds a build users group that does not exist, and asks nix once while nothing changes', async () => {
    const { nix, calls } = fakeNix('nomad-driver-nix-no-such-group');
    let now = 0;
    const probe = createNixStoreProbe({ env: {}, now: () => now, settingsTtlMs: 60_000 });
    const store = join(dir, 'fresh'); // nothing there yet: root Nix creates it
    const first = await probe(nix, ['--option', 'store', store], 0);
    assert.ok(!('problem' in first));
    assert.deepEqual(first.buildGroup, { kind: 'missing' });
    assert.match(nixStoreProblems(first)[0] ?? '', /^Nix cannot build: the group "nomad-driver-nix-no-such-group" named by build-users-group does not exist/);
    now = 30_000;
    await probe(nix, ['--option', 'store', store], 0);
    assert.equal(calls().length, 1, 'cached');
    await probe(nix, ['--option', 'store', store, '--option', 'sandbox', 'false'], 0);
    assert.equal(calls().length, 2, 'other nix_options: asked again');
    now = 200_000;
    await probe(nix, ['--option', 'store', store, '--option', 'sandbox', 'false'], 0);
    assert.equal(calls().length, 3, 'past the TTL: asked again');
  });

  it('reports a daemon socket nobody listens on', async () => {
    const { nix } = fakeNix('');
    const probe = createNixStoreProbe({ env: { NIX_STATE_DIR: join(dir, 'state') } });
    const facts = await probe(nix, ['--option', 'store', 'daemon'], 0);
    assert.ok(!('problem' in facts));
    assert.deepEqual(nixStoreProblems(facts), [
      `Nix cannot reach its daemon: store = "daemon" talks to a nix-daemon, and nothing accepts connections on "${dir}/state/daemon-socket/socket" (ENOENT); fix: start nix-daemon (systemctl start nix-daemon), or as root use the local store: remove "store" from nix.conf and nix_options`,
    ]);
  });

  it('says so when nix cannot print its settings', async () => {
    const nix = join(dir, 'nix-fails');
    writeFileSync(nix, '#!/bin/sh\necho "error: bad nix.conf" >&2\nexit 1\n');
    chmodSync(nix, 0o755);
    const facts = await createNixStoreProbe({ env: {} })(nix, [], 0);
    assert.ok('problem' in facts);
    assert.equal(
      facts.problem,
      `Nix cannot read its settings: failed to run ${nix} --extra-experimental-features nix-command show-config --json: exited with code 1: error: bad nix.conf; fix: correct the client's nix.conf or the plugin's nix_options`,
    );
  });

  it('asks `nix config show` when `nix show-config` is not there', async () => {
    const nix = join(dir, 'nix-config-show');
    writeFileSync(
      nix,
      `#!/bin/sh
case "$*" in
  *show-config*) echo "error: 'show-config' is not a recognised command" >&2; exit 1 ;;
  *"config show --json"*) echo '{"store":{"value":"auto"},"build-users-group":{"value":""}}' ;;
  *) exit 1 ;;
esac
`,
    );
    chmodSync(nix, 0o755);
    const facts = await createNixStoreProbe({ env: {} })(nix, [], 0);
    assert.ok(!('problem' in facts));
    assert.deepEqual(facts.settings, { store: 'auto', buildUsersGroup: '', autoAllocateUids: false });
  });
});

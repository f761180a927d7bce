import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nixStoreProblems, parseNixSettings, storeKind, type NixStoreFacts } from './store-health.js';

const LOCAL = { storeDir: '/nix/store', stateDir: '/nix/var/nix', dbDir: '/nix/var/nix/db' };
const FIX_USERS =
  'create the group and build users in it as Nix\'s installer does (groupadd --system nixbld; then for i in 1 … 32: useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin --gid nixbld --groups nixbld --comment "Nix build user $i" nixbld$i; scripts/setup.sh does this), or run a nix-daemon and add "store = daemon" to nix_options in the plugin "nix" config';

/** A Debian nix-bin client set up right: root, local store, nixbld with members. */
const healthy: NixStoreFacts = {
  euid: 0,
  settings: { store: 'auto', buildUsersGroup: 'nixbld', autoAllocateUids: false },
  store: storeKind('auto'),
  stateDirAccessible: true,
  socket: { exists: false, accepts: false },
  storeDir: { kind: 'dir', writable: true },
  stateDir: { kind: 'dir', writable: true },
  dbDir: { kind: 'dir', writable: true },
  dbFile: { kind: 'file', writable: true },
  buildGroup: { kind: 'found', members: ['nixbld1', 'nixbld2'] },
};

describe("storeKind (Nix's openStore)", () => {
  it('tells local, daemon, auto and other stores apart, with the paths they use', () => {
    assert.deepEqual(storeKind('auto'), { kind: 'auto', stateDir: '/nix/var/nix', socket: '/nix/var/nix/daemon-socket/socket', local: LOCAL });
    assert.deepEqual(storeKind(''), storeKind('auto'));
    assert.deepEqual(storeKind('daemon'), { kind: 'daemon', socket: '/nix/var/nix/daemon-socket/socket' });
    assert.deepEqual(storeKind('unix:///run/nix.sock'), { kind: 'daemon', socket: '/run/nix.sock' });
    assert.deepEqual(storeKind('local'), { kind: 'local', local: LOCAL });
    assert.deepEqual(storeKind('/srv/nix/'), {
      kind: 'local',
      local: { storeDir: '/srv/nix/nix/store', stateDir: '/srv/nix/nix/var/nix', dbDir: '/srv/nix/nix/var/nix/db' },
    });
    assert.deepEqual(storeKind('local?root=/srv/r'), {
      kind: 'local',
      local: { storeDir: '/srv/r/nix/store', stateDir: '/srv/r/nix/var/nix', dbDir: '/srv/r/nix/var/nix/db' },
    });
    assert.deepEqual(storeKind('local?state=/var/s'), { kind: 'local', local: { storeDir: '/nix/store', stateDir: '/var/s', dbDir: '/var/s/db' } });
    assert.deepEqual(storeKind('ssh-ng://builder'), { kind: 'other', uri: 'ssh-ng://builder' });
    assert.deepEqual(storeKind('daemon', { storeDir: '/nix/store', stateDir: '/opt/nixstate' }), {
      kind: 'daemon',
      socket: '/opt/nixstate/daemon-socket/socket',
    });
  });
});

describe('nixStoreProblems', () => {
  it('finds nothing wrong on a set-up client', () => {
    assert.deepEqual(nixStoreProblems(healthy), []);
  });

  it('reports a missing build users group (fresh Debian nix-bin) with the fix', () => {
    assert.deepEqual(nixStoreProblems({ ...healthy, buildGroup: { kind: 'missing' } }), [
      `Nix cannot build: the group "nixbld" named by build-users-group does not exist (Nix running as root without a daemon runs every build as one of that group's members); fix: ${FIX_USERS}`,
    ]);
  });

  it('reports a build users group without members', () => {
    assert.deepEqual(nixStoreProblems({ ...healthy, buildGroup: { kind: 'found', members: [] } }), [
      `Nix cannot build: the group "nixbld" named by build-users-group has no members (Nix running as root without a daemon runs every build as one of them); fix: ${FIX_USERS}`,
    ]);
  });

  it('names the group build-users-group names', () => {
    const [problem] = nixStoreProblems({ ...healthy, settings: { ...healthy.settings, buildUsersGroup: 'nosuchgroup' }, buildGroup: { kind: 'missing' } });
    assert.match(problem ?? '', /^Nix cannot build: the group "nosuchgroup" named by build-users-group does not exist/);
  });

  it('needs no build users with an empty build-users-group, auto-allocate-uids, a non-root plugin or a daemon', () => {
    const missing = { ...healthy, buildGroup: { kind: 'missing' } as const };
    assert.deepEqual(nixStoreProblems({ ...missing, settings: { ...healthy.settings, buildUsersGroup: '' } }), []);
    assert.deepEqual(nixStoreProblems({ ...missing, settings: { ...healthy.settings, autoAllocateUids: true } }), []);
    assert.deepEqual(nixStoreProblems({ ...missing, euid: 1000 }), []);
    assert.deepEqual(
      nixStoreProblems({ ...missing, settings: { ...healthy.settings, store: 'daemon' }, store: storeKind('daemon'), socket: { exists: true, accepts: true } }),
      [],
    );
  });

  it('reports a daemon store whose socket does not answer', () => {
    assert.deepEqual(
      nixStoreProblems({
        ...healthy,
        settings: { ...healthy.settings, store: 'daemon' },
        store: storeKind('daemon'),
        socket: { exists: false, accepts: false, error: 'ENOENT' },
      }),
      [
        'Nix cannot reach its daemon: store = "daemon" talks to a nix-daemon, and nothing accepts connections on "/nix/var/nix/daemon-socket/socket" (ENOENT); fix: start nix-daemon (systemctl start nix-daemon), or as root use the local store: remove "store" from nix.conf and nix_options',
      ],
    );
  });

  it('resolves auto as Nix does: the daemon when the state dir is not writable and the socket exists', () => {
    const auto = { ...healthy, stateDirAccessible: false };
    assert.deepEqual(nixStoreProblems({ ...auto, socket: { exists: true, accepts: true } }), []);
    assert.deepEqual(nixStoreProblems({ ...auto, socket: { exists: true, accepts: false, error: 'ECONNREFUSED' } }), [
      'Nix cannot reach its daemon: store = "auto" talks to a nix-daemon, and nothing accepts connections on "/nix/var/nix/daemon-socket/socket" (ECONNREFUSED); fix: start nix-daemon (systemctl start nix-daemon), or as root use the local store: remove "store" from nix.conf and nix_options',
    ]);
    // no socket: the local store, whose problems count
    assert.equal(nixStoreProblems({ ...auto, socket: { exists: false, accepts: false }, buildGroup: { kind: 'missing' } }).length, 1);
  });

  it('reports a database directory that is not a directory, or read-only', () => {
    const store = storeKind('/srv/broken');
    const base = { ...healthy, settings: { ...healthy.settings, store: '/srv/broken' }, store };
    assert.deepEqual(nixStoreProblems({ ...base, dbDir: { kind: 'not-dir' }, dbFile: { kind: 'not-file' } }), [
      'Nix cannot open its store: the database directory "/srv/broken/nix/var/nix/db" is not a directory; fix: move it away so Nix can create the directory, or point the store setting (nix.conf or nix_options) at an intact store',
      'Nix cannot open its store: its database "/srv/broken/nix/var/nix/db/db.sqlite" is not a regular file; fix: move it away (Nix creates an empty database, forgetting what the store holds) or restore it from a backup',
    ]);
    assert.deepEqual(
      nixStoreProblems({ ...base, dbDir: { kind: 'dir', writable: false, error: 'EROFS' }, dbFile: { kind: 'file', writable: false, error: 'EROFS' } }),
      [
        'Nix cannot open its store: the database directory "/srv/broken/nix/var/nix/db" is not writable (EROFS); fix: make it writable (e.g. remount its filesystem read-write), or run a nix-daemon and add "store = daemon" to nix_options',
        'Nix cannot open its store: its database "/srv/broken/nix/var/nix/db/db.sqlite" is not writable (EROFS); fix: make it writable (chmod u+w, or remount its filesystem read-write)',
      ],
    );
  });

  it('accepts missing directories Nix can create, not those it cannot', () => {
    const fresh = {
      ...healthy,
      storeDir: { kind: 'missing', creatable: true },
      stateDir: { kind: 'missing', creatable: true },
      dbDir: { kind: 'missing', creatable: true },
      dbFile: { kind: 'missing' },
    } as const;
    assert.deepEqual(nixStoreProblems(fresh), []);
    assert.deepEqual(nixStoreProblems({ ...fresh, storeDir: { kind: 'missing', creatable: false } }), [
      'Nix cannot open its store: the store directory "/nix/store" does not exist and cannot be created; fix: create it (mkdir -p /nix/store) or point the store setting (nix.conf or nix_options) at an intact store',
    ]);
    // a read-only store dir is fine: root Nix remounts it writable in its own namespace (NixOS)
    assert.deepEqual(nixStoreProblems({ ...healthy, storeDir: { kind: 'dir', writable: false, error: 'EROFS' } }), []);
  });

  it('checks nothing of a store it cannot see (ssh-ng://, https://)', () => {
    assert.deepEqual(nixStoreProblems({ ...healthy, store: storeKind('ssh-ng://b'), buildGroup: { kind: 'missing' }, dbDir: { kind: 'not-dir' } }), []);
  });
});

describe('parseNixSettings', () => {
  it('reads store, build-users-group and auto-allocate-uids from nix show-config --json', () => {
    const json = JSON.stringify({
      store: { aliases: [], defaultValue: 'auto', value: '/srv/s' },
      'build-users-group': { defaultValue: '', value: 'nixbld' },
      'auto-allocate-uids': { value: true },
      sandbox: { value: true },
    });
    assert.deepEqual(parseNixSettings(json), { store: '/srv/s', buildUsersGroup: 'nixbld', autoAllocateUids: true });
    assert.deepEqual(parseNixSettings(JSON.stringify({ store: { value: 'auto' }, 'build-users-group': { value: '' } })), {
      store: 'auto',
      buildUsersGroup: '',
      autoAllocateUids: false,
    });
    assert.equal(parseNixSettings('not json'), undefined);
    assert.equal(parseNixSettings('{"store": {"value": "auto"}}'), undefined);
  });
});

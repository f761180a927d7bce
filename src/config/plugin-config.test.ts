import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { decodeCtyMsgpack } from './cty-msgpack.js';
import { decodePluginConfig, defaultPluginConfig, pluginConfigFields, trustOptions } from './plugin-config.js';
import { describeFields, toHclSpec } from './schema.js';
import { decodeTaskConfig } from './task-config.js';

describe('plugin config', () => {
  it('has documented defaults', () => {
    assert.deepEqual(defaultPluginConfig(), {
      runtime: 'bwrap',
      nix_bin: '',
      nix_options: [],
      substituters: undefined,
      trusted_public_keys: undefined,
      require_signatures: true,
      allow_flakes: true,
      allowed_flakes: [],
      flake_namespaces: [],
      state_dir: '/var/lib/nomad-driver-nix',
      gc_roots_dir: '/nix/var/nix/gcroots/nomad-driver-nix',
      runc_init: '',
      pids_limit: 0,
      orphan_grace: '5m',
      allow_root: false,
      allow_caps: [
        'AUDIT_WRITE',
        'CHOWN',
        'DAC_OVERRIDE',
        'FOWNER',
        'FSETID',
        'KILL',
        'MKNOD',
        'NET_BIND_SERVICE',
        'SETFCAP',
        'SETGID',
        'SETPCAP',
        'SETUID',
        'SYS_CHROOT',
      ],
      allow_volumes: true,
      allow_local_flakes: [],
      log_level: '',
    });
  });

  it('takes absolute directories in allow_local_flakes, never /, relative ones or the store', () => {
    assert.deepEqual(decodePluginConfig({ allow_local_flakes: ['/srv/flakes', '/opt/app'] }).allow_local_flakes, ['/srv/flakes', '/opt/app']);
    const where = 'in allow_local_flakes in the client\'s plugin "nix" { config { ... } } block';
    const refused: [string, string][] = [
      [
        '/',
        `failed to decode plugin config: field "allow_local_flakes": "/" is the whole file system; fix: list only directories that hold flakes jobs may use (e.g. "/srv/flakes") ${where}`,
      ],
      [
        'srv/flakes',
        `failed to decode plugin config: field "allow_local_flakes": "srv/flakes" is not an absolute path; fix: list absolute, normalised directories ${where}`,
      ],
      [
        '/srv/../root',
        `failed to decode plugin config: field "allow_local_flakes": "/srv/../root" contains a ".." segment; fix: list absolute, normalised directories ${where}`,
      ],
      [
        '/nix/store/abc-source',
        `failed to decode plugin config: field "allow_local_flakes": "/nix/store/abc-source" is inside /nix/store; fix: list only directories that hold flakes jobs may use (e.g. "/srv/flakes") ${where}`,
      ],
      [
        '/nix',
        `failed to decode plugin config: field "allow_local_flakes": "/nix" holds /nix/store; fix: list only directories that hold flakes jobs may use (e.g. "/srv/flakes") ${where}`,
      ],
    ];
    for (const [dir, message] of refused) {
      assert.throws(() => decodePluginConfig({ allow_local_flakes: ['/srv/ok', dir] }), { code: 'invalid_argument', message });
    }
  });

  it('takes capability names in any spelling, and "ALL", in allow_caps', () => {
    assert.deepEqual(decodePluginConfig({ allow_caps: ['net_raw', 'CAP_SYS_ADMIN', 'Chown'] }).allow_caps, ['net_raw', 'CAP_SYS_ADMIN', 'Chown']);
    assert.deepEqual(decodePluginConfig({ allow_caps: ['all'] }).allow_caps, ['all']);
    assert.throws(() => decodePluginConfig({ allow_caps: ['CHOWN', 'NET_RAWW'] }), {
      code: 'invalid_argument',
      message:
        'failed to decode plugin config: field "allow_caps": "NET_RAWW" is not a Linux capability name; fix: write capability names such as "NET_BIND_SERVICE" or "CAP_NET_BIND_SERVICE" in allow_caps, or "ALL" in the client\'s plugin "nix" { config { ... } } block',
    });
  });

  it('treats nil attributes (cty null) as absent', () => {
    assert.equal(decodePluginConfig({ runtime: null, state_dir: '/srv/state' }).runtime, 'bwrap');
    assert.equal(decodePluginConfig({ runtime: null, state_dir: '/srv/state' }).state_dir, '/srv/state');
  });

  it('names the field, the value and the fix', () => {
    assert.throws(() => decodePluginConfig({ runtime: 'docker' }), {
      code: 'invalid_argument',
      message:
        'failed to decode plugin config: field "runtime": "docker" is not one of "bwrap", "runc"; fix: set runtime to one of "bwrap", "runc" in the client\'s plugin "nix" { config { ... } } block',
    });
    assert.throws(() => decodePluginConfig({ nix_bin: 'bin' }), /field "nix_bin": "bin" is not an absolute path/);
    assert.throws(() => decodePluginConfig({ state_dir: '/var/lib/../tmp' }), /contains a "\.\." segment/);
    assert.throws(() => decodePluginConfig({ state_dir: '/var/lib/' }), /is not normalised/);
    assert.throws(() => decodePluginConfig({ log_level: 'loud' }), /field "log_level": "loud" is not one of "", "trace"/);
  });

  it('takes nix settings as nix.conf lines', () => {
    assert.deepEqual(decodePluginConfig({ nix_options: ['connect-timeout = 5', 'max-jobs = 4'] }).nix_options, ['connect-timeout = 5', 'max-jobs = 4']);
    assert.throws(() => decodePluginConfig({ nix_options: ['--option x'] }), /field "nix_options": "--option x" is not a nix.conf line "name = value"/);
  });

  it("refuses Nix's trust settings in nix_options: the trust options decide them", () => {
    assert.throws(() => decodePluginConfig({ nix_options: ['max-jobs = 4', 'require-sigs = false'] }), {
      message:
        'failed to decode plugin config: field "nix_options": "require-sigs = false" sets Nix\'s require-sigs, which the plugin\'s require_signatures decides (the driver passes it to every Nix command after nix_options); fix: remove it from nix_options and set require_signatures in the client\'s plugin "nix" { config { ... } } block',
    });
    for (const [line, option] of [
      ['substituters =', 'substituters'],
      ['extra-substituters = http://x', 'substituters'],
      ['binary-caches = http://x', 'substituters'],
      ['trusted-substituters = http://x', 'substituters'],
      ['extra-trusted-public-keys = k:AAAA', 'trusted_public_keys'],
      ['binary-cache-public-keys = k:AAAA', 'trusted_public_keys'],
    ] as const) {
      assert.throws(() => decodePluginConfig({ nix_options: [line] }), new RegExp(`which the plugin's ${option} decides`), line);
    }
  });

  it('passes the trust settings to Nix: require-sigs always, caches and keys when set', () => {
    const key = 'test-1:tykvNdtQpM9gsNRod+550mU+zCvUyRMv7+Wu87WDOPc=';
    assert.deepEqual(trustOptions(decodePluginConfig({})), ['--option', 'require-sigs', 'true']);
    assert.deepEqual(trustOptions(decodePluginConfig({ substituters: [], require_signatures: false })), [
      '--option',
      'require-sigs',
      'false',
      '--option',
      'substituters',
      '',
    ]);
    assert.deepEqual(trustOptions(decodePluginConfig({ substituters: ['http://a', 'file:///srv/c'], trusted_public_keys: [key, key] })), [
      '--option',
      'require-sigs',
      'true',
      '--option',
      'substituters',
      'http://a file:///srv/c',
      '--option',
      'trusted-public-keys',
      `${key} ${key}`,
    ]);
  });

  it('checks cache URLs and public keys', () => {
    assert.throws(() => decodePluginConfig({ substituters: ['cache.example.org'] }), {
      message:
        'failed to decode plugin config: field "substituters": "cache.example.org" is not a binary cache URL (<scheme>://…, without spaces); fix: list cache URLs such as "https://cache.example.org" or "file:///srv/cache" in substituters in the client\'s plugin "nix" { config { ... } } block',
    });
    assert.throws(() => decodePluginConfig({ substituters: ['http://c?trusted=1'] }), {
      message:
        'failed to decode plugin config: field "substituters": "http://c?trusted=1" has trusted=1, which makes Nix accept its paths without signatures while require_signatures is on; fix: remove trusted=1 from the URL and add the cache\'s public key to trusted_public_keys in the client\'s plugin "nix" { config { ... } } block',
    });
    assert.deepEqual(decodePluginConfig({ substituters: ['http://c?trusted=1'], require_signatures: false }).substituters, ['http://c?trusted=1']);
    assert.throws(
      () => decodePluginConfig({ trusted_public_keys: ['test-1:AAAA'] }),
      /field "trusted_public_keys": "test-1:AAAA" is not a Nix public key "<name>:<base64 of 32 bytes>"/,
    );
    assert.throws(() => decodePluginConfig({ trusted_public_keys: ['nokey'] }), /"nokey" is not a Nix public key/);
  });

  it('produces an hclspec where every attribute has its own name inside a Default', () => {
    const spec = toHclSpec(pluginConfigFields) as any;
    for (const [name, attr] of Object.entries<any>(spec.object.attributes)) {
      // substituters and trusted_public_keys have no default: unset means the client's nix.conf
      if (['substituters', 'trusted_public_keys'].includes(name))
        assert.deepEqual(attr, { block: 'Attr', Attr: { name, type: 'list(string)', required: false } });
      else {
        assert.equal(attr.block, 'default');
        assert.equal(attr.default.primary.Attr.name, name);
      }
    }
    assert.equal(spec.object.attributes.gc_roots_dir.default.default.literal.value, '"/nix/var/nix/gcroots/nomad-driver-nix"');
  });

  it('documents every field', () => {
    for (const row of describeFields(pluginConfigFields)) {
      assert.ok(row.doc.length > 20, row.name);
      assert.match(row.example, new RegExp(`^${row.name} = `));
    }
  });
});

describe('task config', () => {
  it('decodes lists and leaves optional strings undefined', () => {
    const config = decodeTaskConfig({ store_path: '/nix/store/abc-x', args: ['-p', '80'], flake: null });
    assert.equal(config.flake, undefined);
    assert.deepEqual(config.args, ['-p', '80']);
    assert.deepEqual(config.packages, []);
    assert.deepEqual([config.cap_add, config.cap_drop], [[], []]);
  });

  it('takes capability names in cap_add and cap_drop, "ALL" only in cap_drop', () => {
    const config = decodeTaskConfig({ store_path: '/nix/store/abc-x', cap_add: ['net_raw', 'CAP_CHOWN'], cap_drop: ['ALL'] });
    assert.deepEqual([config.cap_add, config.cap_drop], [['net_raw', 'CAP_CHOWN'], ['ALL']]);
    assert.throws(() => decodeTaskConfig({ cap_add: ['ALL'] }), {
      message:
        'failed to decode task config: field "cap_add": "ALL" is not allowed in cap_add; fix: list each capability the task needs, e.g. cap_add = ["NET_BIND_SERVICE"]',
    });
    assert.throws(() => decodeTaskConfig({ cap_drop: ['SYS_ADMINN'] }), {
      message:
        'failed to decode task config: field "cap_drop": "SYS_ADMINN" is not a Linux capability name; fix: write capability names such as "NET_BIND_SERVICE" or "CAP_NET_BIND_SERVICE" in cap_drop, or "ALL"',
    });
  });
});

describe('cty msgpack', () => {
  const packr = new Packr({ useRecords: false });

  it('accepts numbers as ints, floats and decimal strings', async () => {
    const { decodeBlock, field } = await import('./schema.js');
    const fields = { n: field({ type: 'number', default: 1, doc: 'a number for the test', example: 'n = 2' }) };
    const ctx = { what: 'test config', where: 'the test' };
    for (const [encoded, expected] of [
      [3, 3],
      [2.5, 2.5],
      ['0.1', 0.1],
      [2 ** 40, 2 ** 40],
    ] as const) {
      const value = decodeCtyMsgpack(packr.pack({ n: encoded }), 'test config');
      assert.equal(decodeBlock(fields, value, ctx).n, expected);
    }
    assert.throws(() => decodeBlock(fields, { n: 'ten' }, ctx), /field "n": expected number, got string "ten"/);
  });

  it('rejects truncated data and cty unknown values', () => {
    assert.throws(() => decodeCtyMsgpack(Buffer.from([0x82, 0xa1]), 'plugin config'), /^Error|failed to decode plugin config: invalid msgpack/);
    assert.throws(() => decodeCtyMsgpack(Buffer.from([0x81, 0xa1, 0x61, 0xd4, 0x00, 0x00]), 'plugin config'), /value at "a" is not known/);
    assert.throws(() => decodeCtyMsgpack(Buffer.from([0x91, 0xc1]), 'plugin config'), /value at "\[0\]" is not known/);
  });

  it('decodes an empty payload as an empty block', () => {
    assert.equal(decodeCtyMsgpack(new Uint8Array(), 'plugin config'), null);
    assert.equal(decodePluginConfig(null).runtime, 'bwrap');
  });
});

describe('parseDurationMs', () => {
  it('reads Go-style durations of at least a second', async () => {
    const { parseDurationMs } = await import('./plugin-config.js');
    assert.equal(parseDurationMs('90s'), 90_000);
    assert.equal(parseDurationMs('5m'), 300_000);
    assert.equal(parseDurationMs('1h30m'), 5_400_000);
    assert.equal(parseDurationMs('1500ms'), 1500);
    assert.equal(parseDurationMs('500ms'), undefined);
    assert.equal(parseDurationMs('5'), undefined);
    assert.equal(parseDurationMs('five minutes'), undefined);
  });
});

describe('dangerous state_dir and gc_roots_dir', () => {
  const WHERE = 'the client\'s plugin "nix" { config { ... } } block';
  const refused = (config: Record<string, string>, field: string, cause: string, fix: string) =>
    assert.throws(() => decodePluginConfig(config), {
      name: 'DriverError',
      message: `failed to decode plugin config: field "${field}": ${cause}; fix: ${fix}`,
    });
  const stateFix = `set state_dir to a directory of its own such as "/var/lib/nomad-driver-nix" in ${WHERE}`;
  const rootsFix = `set gc_roots_dir to a directory of its own such as "/nix/var/nix/gcroots/nomad-driver-nix" in ${WHERE}`;

  it('refuses / and system directories, for both', () => {
    refused({ state_dir: '/' }, 'state_dir', '"/" is a system directory; the driver removes entries below state_dir', stateFix);
    refused({ gc_roots_dir: '/' }, 'gc_roots_dir', '"/" is a system directory; the driver removes entries below gc_roots_dir', rootsFix);
    for (const dir of ['/var/lib', '/etc', '/tmp', '/home', '/nix', '/nix/var/nix']) {
      refused({ state_dir: dir }, 'state_dir', `"${dir}" is a system directory; the driver removes entries below state_dir`, stateFix);
    }
  });

  it("refuses /nix/var/nix/gcroots itself and Nix's own roots below it; a directory of the driver's own below it is the intended use", () => {
    refused(
      { gc_roots_dir: '/nix/var/nix/gcroots' },
      'gc_roots_dir',
      '"/nix/var/nix/gcroots" is a system directory; the driver removes entries below gc_roots_dir',
      rootsFix,
    );
    refused(
      { gc_roots_dir: '/nix/var/nix/gcroots/auto' },
      'gc_roots_dir',
      '"/nix/var/nix/gcroots/auto" lies in /nix/var/nix/gcroots/auto, which is not the driver\'s; the driver removes entries below gc_roots_dir',
      rootsFix,
    );
    refused(
      { gc_roots_dir: '/nix/var/nix/gcroots/per-user/root' },
      'gc_roots_dir',
      '"/nix/var/nix/gcroots/per-user/root" lies in /nix/var/nix/gcroots/per-user, which is not the driver\'s; the driver removes entries below gc_roots_dir',
      rootsFix,
    );
    assert.equal(decodePluginConfig({ gc_roots_dir: '/nix/var/nix/gcroots/nomad-driver-nix-2' }).gc_roots_dir, '/nix/var/nix/gcroots/nomad-driver-nix-2');
  });

  it('refuses the store, kernel file systems and relative paths', () => {
    refused(
      { state_dir: '/nix/store/abc-state' },
      'state_dir',
      '"/nix/store/abc-state" is inside /nix/store, which the Nix garbage collector empties',
      stateFix,
    );
    refused({ gc_roots_dir: '/nix/store' }, 'gc_roots_dir', '"/nix/store" is inside /nix/store, which the Nix garbage collector empties', rootsFix);
    refused(
      { state_dir: '/proc/self' },
      'state_dir',
      '"/proc/self" is a system directory; the driver removes entries below state_dir'.replace(
        'is a system directory',
        "lies in /proc, which is not the driver's",
      ),
      stateFix,
    );
    refused(
      { state_dir: 'var/lib/nomad-driver-nix' },
      'state_dir',
      '"var/lib/nomad-driver-nix" is not an absolute path',
      `set state_dir to an absolute, normalised path in ${WHERE}`,
    );
  });

  it('refuses a state_dir and gc_roots_dir that overlap', () => {
    refused(
      { state_dir: '/srv/nix-driver', gc_roots_dir: '/srv/nix-driver/gcroots' },
      'gc_roots_dir',
      '"/srv/nix-driver/gcroots" and state_dir "/srv/nix-driver" overlap; the driver removes entries below each',
      `give gc_roots_dir and state_dir separate directories (e.g. "/nix/var/nix/gcroots/nomad-driver-nix" and "/var/lib/nomad-driver-nix") in ${WHERE}`,
    );
  });
});

/**
 * Proves test/support/oci-schema.ts can both accept and reject: a realistic Linux config.json
 * passes, each bad fixture fails with an error naming the offending path, and what `runc spec`
 * generates passes too. The "not enforced" block records what the runtime-spec schema
 * (1.0.2-dev, Debian's golang-github-opencontainers-specs-dev) does NOT check, so the OCI
 * renderer has to check those itself: if a schema update starts enforcing one, that test fails
 * and moves up to the enforced list.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateOciConfig } from './support/oci-schema.js';

// Loose on purpose: the bad fixtures poke into deep paths of a copy of GOOD.
type Json = Record<string, any>;

/** A minimal but realistic Linux config, close to what our OCI renderer produces. */
const GOOD: Json = {
  ociVersion: '1.0.2',
  root: { path: 'rootfs', readonly: true },
  hostname: 'task',
  process: {
    terminal: false,
    user: { uid: 1000, gid: 100, additionalGids: [100], umask: 0o022 },
    args: ['/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/bin/hello', '--greeting', 'hi'],
    env: ['PATH=/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello/bin', 'HOME=/local'],
    cwd: '/local',
    capabilities: {
      bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
      effective: ['CAP_NET_BIND_SERVICE'],
      permitted: ['CAP_NET_BIND_SERVICE'],
      inheritable: [],
      ambient: [],
    },
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 1024 }],
    noNewPrivileges: true,
  },
  mounts: [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
    {
      destination: '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello',
      type: 'bind',
      source: '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello',
      options: ['rbind', 'ro', 'nosuid', 'nodev'],
    },
    { destination: '/local', type: 'bind', source: '/var/lib/nomad/alloc/x/task/local', options: ['rbind', 'rw'] },
  ],
  linux: {
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/x' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
    cgroupsPath: '/nomad.slice/x.scope',
    resources: {
      cpu: { shares: 1024, cpus: '0-1' },
      memory: { limit: 268435456, reservation: 134217728 },
      pids: { limit: 512 },
      devices: [{ allow: false, access: 'rwm' }],
    },
    seccomp: {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      syscalls: [
        {
          names: ['kexec_load', 'open_by_handle_at'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 1,
        },
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 1,
          args: [{ index: 0, value: 0xff00, valueTwo: 0x0400, op: 'SCMP_CMP_MASKED_EQ' }],
        },
      ],
    },
    maskedPaths: ['/proc/kcore', '/proc/keys', '/sys/firmware'],
    readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/sys', '/proc/sysrq-trigger'],
  },
};

/** A deep copy of GOOD with `change` applied. */
function bad(change: (config: Json) => void): Json {
  const config = structuredClone(GOOD);
  change(config);
  return config;
}

function assertInvalid(config: Json, expected: RegExp): void {
  const result = validateOciConfig(config);
  assert.equal(result.valid, false, 'the schema accepted a config it should reject');
  assert.ok(
    result.errors.some((e) => expected.test(e)),
    `no error matches ${String(expected)}; errors were:\n  ${result.errors.join('\n  ')}`,
  );
}

function assertValid(config: unknown): void {
  const result = validateOciConfig(config);
  assert.deepEqual(result.errors, []);
  assert.equal(result.valid, true);
}

describe('OCI runtime-spec schema validator', () => {
  it('accepts the known-good Linux config', () => {
    assertValid(GOOD);
  });

  describe('rejects (rules the schema enforces)', () => {
    it('missing ociVersion (config-schema.json: required ["ociVersion"])', () => {
      assertInvalid(
        bad((c) => delete c['ociVersion']),
        /^\/ must have required property 'ociVersion'$/,
      );
    });

    it('unknown namespace type (defs-linux.json NamespaceType enum)', () => {
      assertInvalid(
        bad((c) => c['linux'].namespaces.push({ type: 'time' })),
        /^\/linux\/namespaces\/5\/type must be equal to one of the allowed values: .*"network"/,
      );
    });

    it('bad seccomp action name (defs-linux.json SeccompAction enum)', () => {
      assertInvalid(
        bad((c) => (c['linux'].seccomp.syscalls[0].action = 'SCMP_ACT_DENY')),
        /^\/linux\/seccomp\/syscalls\/0\/action must be equal to one of the allowed values/,
      );
      assertInvalid(
        bad((c) => (c['linux'].seccomp.defaultAction = 'ALLOW')),
        /^\/linux\/seccomp\/defaultAction must be equal to one of the allowed values/,
      );
    });

    it('bad seccomp arg operator (defs-linux.json SeccompOperators enum)', () => {
      assertInvalid(
        bad((c) => (c['linux'].seccomp.syscalls[1].args[0].op = 'SCMP_CMP_MASKED')),
        /^\/linux\/seccomp\/syscalls\/1\/args\/0\/op must be equal to one of the allowed values/,
      );
    });

    it('negative errnoRet (defs.json uint32: minimum 0)', () => {
      assertInvalid(
        bad((c) => (c['linux'].seccomp.syscalls[0].errnoRet = -1)),
        /^\/linux\/seccomp\/syscalls\/0\/errnoRet must be >= 0$/,
      );
    });

    it('process.args not an array (defs.json ArrayOfStrings: type array)', () => {
      assertInvalid(
        bad((c) => (c['process'].args = '/bin/sh -c true')),
        /^\/process\/args must be array$/,
      );
    });

    it('uid as a string (defs.json UID → uint32: type integer)', () => {
      assertInvalid(
        bad((c) => (c['process'].user.uid = '1000')),
        /^\/process\/user\/uid must be integer$/,
      );
    });

    it('missing process.cwd (config-schema.json process: required ["cwd"])', () => {
      assertInvalid(
        bad((c) => delete c['process'].cwd),
        /^\/process must have required property 'cwd'$/,
      );
    });

    it('pids limit not an integer (defs.json int64: type integer)', () => {
      assertInvalid(
        bad((c) => (c['linux'].resources.pids.limit = 'max')),
        /^\/linux\/resources\/pids\/limit must be integer$/,
      );
    });

    it('rlimit type without the RLIMIT_ prefix (config-schema.json pattern ^RLIMIT_[A-Z]+$)', () => {
      assertInvalid(
        bad((c) => (c['process'].rlimits[0].type = 'NOFILE')),
        /^\/process\/rlimits\/0\/type must match pattern/,
      );
    });

    it('reports every violation, not just the first', () => {
      const result = validateOciConfig(
        bad((c) => {
          delete c['ociVersion'];
          c['process'].user.uid = '0';
        }),
      );
      assert.equal(result.valid, false);
      assert.ok(result.errors.length >= 2, result.errors.join('\n'));
    });
  });

  // The schema leaves these to the runtime: runc rejects some of them at create time, but a
  // schema-valid config says nothing about them. The renderer must check them itself.
  describe('accepts (rules the schema does NOT enforce)', () => {
    it('relative mount destination (defs.json FilePath is just a string)', () => {
      assertValid(bad((c) => (c['mounts'][4].destination = 'local')));
    });

    it('negative pids limit (defs.json int64; -1 means "unlimited" to runc)', () => {
      assertValid(bad((c) => (c['linux'].resources.pids.limit = -5)));
    });

    it('capability names without CAP_ (capabilities are ArrayOfStrings)', () => {
      assertValid(bad((c) => (c['process'].capabilities.bounding = ['NET_ADMIN', 'not-a-capability'])));
    });

    it('device access letters (DeviceCgroup.access is any string)', () => {
      assertValid(bad((c) => (c['linux'].resources.devices[0].access = 'xyz')));
    });

    it('relative namespace path and unknown top-level keys (no additionalProperties: false)', () => {
      assertValid(
        bad((c) => {
          c['linux'].namespaces[1].path = 'netns/x';
          c['extraKey'] = true;
        }),
      );
    });
  });

  it('throws a pointer to scripts/setup.sh when the schema directory is missing', () => {
    const saved = process.env['OCI_RUNTIME_SPEC_SCHEMA_DIR'];
    process.env['OCI_RUNTIME_SPEC_SCHEMA_DIR'] = join(tmpdir(), 'no-such-oci-schema-dir');
    try {
      assert.throws(() => validateOciConfig(GOOD), /scripts\/setup\.sh.*golang-github-opencontainers-specs-dev/s);
    } finally {
      if (saved === undefined) delete process.env['OCI_RUNTIME_SPEC_SCHEMA_DIR'];
      else process.env['OCI_RUNTIME_SPEC_SCHEMA_DIR'] = saved;
    }
    assertValid(GOOD);
  });

  describe('cross-check against runc spec', () => {
    // setup.sh puts /usr/sbin and /sbin on PATH; Debian's runc lives in /usr/sbin.
    const runc = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin']
      .filter((d) => d !== '')
      .map((d) => join(d, 'runc'))
      .find((p) => existsSync(p));
    const skip = runc === undefined ? 'runc is not installed' : false;
    const dirs: string[] = [];
    after(() => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    for (const flags of [[], ['--rootless']]) {
      it(`accepts what \`runc spec ${flags.join(' ')}\` generates`, { skip }, () => {
        const dir = mkdtempSync(join(tmpdir(), 'runc-spec-'));
        dirs.push(dir);
        const run = spawnSync(runc ?? 'runc', ['spec', ...flags], { cwd: dir, encoding: 'utf8' });
        assert.equal(run.status, 0, run.stderr);
        const config: unknown = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
        assertValid(config);
      });
    }
  });
});

/**
 * Driver-level tests: the real plugin process, its real socket, our own gRPC client. They
 * check what go-plugin and Nomad's client rely on (handshake, cookie, stdio discipline,
 * signals, health, BasePlugin, SetConfig errors, fingerprint) without a Nomad agent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import * as grpc from '@grpc/grpc-js';
import { hclogLineProblems } from './support/hclog-rules.js';
import { MAIN_JS, call, startPlugin, type RunningPlugin } from './support/plugin-process.js';
import type { FingerprintResponse__Output } from '../src/gen/hashicorp/nomad/plugins/drivers/proto/FingerprintResponse.js';
import { decodeRecoverable, STATUS_DETAILS_KEY } from '../src/rpc/status.js';

const packr = new Packr({ useRecords: false });

/** The plugin config as Nomad encodes it: every attribute present, sorted, nil when unset. */
function ctyConfig(values: Record<string, unknown>): Buffer {
  const all: Record<string, unknown> = {
    allow_root: null,
    gc_roots_dir: null,
    log_level: null,
    nix_bin: null,
    nix_options: null,
    runtime: null,
    state_dir: null,
    ...values,
  };
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(all).sort()) sorted[key] = all[key];
  return packr.pack(sorted);
}

const plugins: RunningPlugin[] = [];
async function plugin(env: Record<string, string | undefined> = {}): Promise<RunningPlugin> {
  const p = await startPlugin({ env });
  plugins.push(p);
  return p;
}
after(() => {
  for (const p of plugins) p.kill();
});

function firstFingerprint(p: RunningPlugin, timeoutMs = 3_000): Promise<FingerprintResponse__Output> {
  return new Promise((resolve, reject) => {
    const stream = p.clients.driver.Fingerprint({});
    const timer = setTimeout(() => reject(new Error('no fingerprint in time')), timeoutMs);
    stream.once('data', (message: FingerprintResponse__Output) => {
      clearTimeout(timer);
      stream.cancel();
      resolve(message);
    });
    stream.on('error', (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) reject(error);
    });
  });
}

describe('handshake and process discipline', () => {
  it('refuses to run without the magic cookie, says why on stderr and prints nothing on stdout', () => {
    for (const cookie of [undefined, 'wrong']) {
      const env = { ...process.env };
      delete env.NOMAD_PLUGIN_MAGIC_COOKIE;
      if (cookie !== undefined) env.NOMAD_PLUGIN_MAGIC_COOKIE = cookie;
      const result = spawnSync(process.execPath, [MAIN_JS], { env, encoding: 'utf8', timeout: 10_000 });
      assert.equal(result.status, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^This binary is a plugin/);
    }
  });

  it('prints exactly one go-plugin handshake line naming a 0600 unix socket', async () => {
    const p = await plugin();
    assert.match(p.handshake, /^1\|2\|unix\|\/[^|]+\|grpc\|$/);
    const stat = statSync(p.socketPath);
    assert.ok(stat.isSocket());
    assert.equal(stat.mode & 0o777, 0o600);
    await call(p.clients.base, 'PluginInfo', {});
    await firstFingerprint(p);
    assert.deepEqual(p.stdoutLines, [p.handshake], 'nothing but the handshake line on stdout');
  });

  it('creates the socket in PLUGIN_UNIX_SOCKET_DIR, group-owned 0660 with PLUGIN_UNIX_SOCKET_GROUP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-plugin-sock-'));
    try {
      const p = await plugin({ PLUGIN_UNIX_SOCKET_DIR: dir, PLUGIN_UNIX_SOCKET_GROUP: '12345' });
      assert.equal(join(dir, p.socketPath.slice(dir.length + 1)), p.socketPath);
      assert.ok(p.socketPath.startsWith(`${dir}/plugin`));
      const stat = statSync(p.socketPath);
      assert.equal(stat.mode & 0o777, 0o660);
      assert.equal(stat.gid, 12345);
      p.kill('SIGTERM');
      await p.exited;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers grpc.health.v1 for service "plugin" with SERVING', async () => {
    const p = await plugin();
    const response = await call<object, { status: string }>(p.clients.health, 'Check', { service: 'plugin' });
    assert.equal(response.status, 'SERVING');
    await assert.rejects(call(p.clients.health, 'Check', { service: 'nope' }), { code: grpc.status.NOT_FOUND });
  });

  it('ignores SIGINT', async () => {
    const p = await plugin();
    p.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(p.child.exitCode, null);
    const response = await call<object, { status: string }>(p.clients.health, 'Check', { service: 'plugin' });
    assert.equal(response.status, 'SERVING');
  });

  it('exits 0 on SIGTERM and removes its socket', async () => {
    const p = await plugin();
    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.equal(existsSync(p.socketPath), false);
  });

  it('exits 0 after GRPCController.Shutdown and removes its socket', async () => {
    const p = await plugin();
    await call(p.clients.controller, 'Shutdown', {});
    assert.equal(await p.exited, 0);
    assert.equal(existsSync(p.socketPath), false);
  });

  it('keeps serving after its stdout and stderr pipes die (agent crashed)', async () => {
    const p = await plugin({ NOMAD_DRIVER_NIX_LOG_LEVEL: 'trace' });
    p.child.stdout?.destroy();
    p.child.stderr?.destroy();
    // provoke log lines: a rejected config logs a warning
    await assert.rejects(call(p.clients.base, 'SetConfig', { msgpack_config: ctyConfig({ runtime: 'docker' }) }));
    await firstFingerprint(p);
    const response = await call<object, { status: string }>(p.clients.health, 'Check', { service: 'plugin' });
    assert.equal(response.status, 'SERVING');
    assert.equal(p.child.exitCode, null);
  });

  it('keeps GRPCStdio streams open and idle', async () => {
    const p = await plugin();
    const stream = p.clients.stdio.StreamStdio({});
    let ended = false;
    let data = 0;
    stream.on('data', () => (data += 1));
    stream.on('end', () => (ended = true));
    stream.on('error', () => (ended = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ended, false);
    assert.equal(data, 0);
    stream.cancel();
  });

  it('writes only hclog-compatible JSON lines on stderr', async () => {
    const p = await plugin({ NOMAD_DRIVER_NIX_LOG_LEVEL: 'trace' });
    await call(p.clients.base, 'SetConfig', { msgpack_config: ctyConfig({}) });
    await assert.rejects(call(p.clients.base, 'SetConfig', { msgpack_config: Buffer.from([0xc1, 0x00]) }));
    await firstFingerprint(p);
    p.child.kill('SIGTERM');
    await p.exited;
    assert.ok(p.stderrLines.length >= 3, `expected log lines, got ${p.stderrLines.length}`);
    for (const line of p.stderrLines) assert.deepEqual(hclogLineProblems(line), [], line);
    assert.ok(
      p.stderrLines.some((l) => JSON.parse(l)['@level'] === 'debug'),
      'trace level from the environment lets debug lines through',
    );
  });
});

describe('BasePlugin', () => {
  it('PluginInfo names a DRIVER "nix" speaking v0.1.0 with a semver version', async () => {
    const p = await plugin();
    const info = await call<object, Record<string, unknown>>(p.clients.base, 'PluginInfo', {});
    assert.equal(info.type, 'DRIVER');
    assert.equal(info.name, 'nix');
    assert.deepEqual(info.plugin_api_versions, ['v0.1.0']);
    assert.match(String(info.plugin_version), /^\d+\.\d+\.\d+$/);
  });

  it('ConfigSchema is an hclspec object with defaults for every option', async () => {
    const p = await plugin();
    const { spec } = await call<object, { spec: any }>(p.clients.base, 'ConfigSchema', {});
    assert.equal(spec.block, 'object');
    const runtime = spec.object.attributes.runtime;
    assert.equal(runtime.block, 'default');
    assert.deepEqual(runtime.default.primary.Attr, { name: 'runtime', type: 'string', required: false });
    assert.equal(runtime.default.default.literal.value, '"bwrap"');
    assert.deepEqual(Object.keys(spec.object.attributes).sort(), [
      'allow_caps',
      'allow_flakes',
      'allow_local_flakes',
      'allow_root',
      'allow_volumes',
      'allowed_flakes',
      'flake_namespaces',
      'gc_roots_dir',
      'log_level',
      'nix_bin',
      'nix_options',
      'orphan_grace',
      'pids_limit',
      'require_signatures',
      'runc_init',
      'runtime',
      'state_dir',
      'substituters',
      'trusted_public_keys',
    ]);
  });

  it('SetConfig accepts a valid config, including the agent config Nomad sends', async () => {
    const p = await plugin();
    await call(p.clients.base, 'SetConfig', {
      msgpack_config: ctyConfig({ runtime: 'runc', state_dir: '/var/lib/x' }),
      nomad_config: { driver: { ClientMinPort: 14000, ClientMaxPort: 14512 } },
      plugin_api_version: 'v0.1.0',
    });
    const fp = await firstFingerprint(p);
    assert.equal(fp.attributes['driver.nix.runtime']?.string_val, 'runc');
  });

  it('SetConfig rejects a runtime it does not know, naming the field, the value and the allowed values', async () => {
    const p = await plugin();
    const error = await call(p.clients.base, 'SetConfig', { msgpack_config: ctyConfig({ runtime: 'docker' }) }).then(
      () => assert.fail('accepted runtime = "docker"'),
      (e: grpc.ServiceError) => e,
    );
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(
      error.details,
      'failed to decode plugin config: field "runtime": "docker" is not one of "bwrap", "runc"; fix: set runtime to one of "bwrap", "runc" in the client\'s plugin "nix" { config { ... } } block',
    );
  });

  it('SetConfig rejects wrong types and malformed msgpack with INVALID_ARGUMENT, never a crash', async () => {
    const p = await plugin();
    const cases: [Buffer, RegExp][] = [
      [ctyConfig({ runtime: 5 }), /^failed to decode plugin config: field "runtime": expected string, got number 5;/],
      [ctyConfig({ state_dir: ['a'] }), /^failed to decode plugin config: field "state_dir": expected string, got list/],
      [
        ctyConfig({ state_dir: 'relative/dir' }),
        /field "state_dir": "relative\/dir" is not an absolute path; fix: set state_dir to an absolute, normalised path/,
      ],
      [ctyConfig({ gc_roots_dir: '/nix/store/roots' }), /field "gc_roots_dir": "\/nix\/store\/roots" is inside \/nix\/store/],
      [ctyConfig({ allow_local_flakes: ['/'] }), /^failed to decode plugin config: field "allow_local_flakes": "\/" is the whole file system; fix: /],
      [ctyConfig({ allow_local_flakes: ['srv'] }), /^failed to decode plugin config: field "allow_local_flakes": "srv" is not an absolute path; fix: /],
      [
        ctyConfig({ allow_local_flakes: ['/nix/store/x-source'] }),
        /^failed to decode plugin config: field "allow_local_flakes": "\/nix\/store\/x-source" is inside \/nix\/store; fix: /,
      ],
      [Buffer.from([0x85, 0xa1]), /^failed to decode plugin config: invalid msgpack/],
      [Buffer.from([0x81, 0xa7, ...Buffer.from('runtime'), 0xd4, 0x00, 0x00]), /value at "runtime" is not known/],
      [packr.pack('just a string'), /^failed to decode plugin config: expected an object, got string/],
    ];
    for (const [bytes, expected] of cases) {
      await assert.rejects(call(p.clients.base, 'SetConfig', { msgpack_config: bytes }), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT, e.details);
        assert.match(e.details, expected);
        return true;
      });
    }
    const response = await call<object, { status: string }>(p.clients.health, 'Check', { service: 'plugin' });
    assert.equal(response.status, 'SERVING');
  });
});

describe('Driver basics', () => {
  it('Capabilities: signals, exec, IMAGE isolation, HOST and GROUP networking, any mounts', async () => {
    const p = await plugin();
    const { capabilities } = await call<object, { capabilities: Record<string, unknown> }>(p.clients.driver, 'Capabilities', {});
    assert.equal(capabilities.send_signals, true);
    assert.equal(capabilities.exec, true);
    assert.equal(capabilities.fs_isolation, 'IMAGE');
    assert.deepEqual(capabilities.network_isolation_modes, ['HOST', 'GROUP']);
    assert.equal(capabilities.mount_configs, 'UNKNOWN_MOUNTS'); // = ANY_MOUNTS (0), enum alias
    assert.equal(capabilities.must_create_network, false);
  });

  it('Fingerprint answers at once with the driver attributes', async () => {
    const p = await plugin();
    const started = Date.now();
    const fp = await firstFingerprint(p);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(fp.attributes['driver.nix']?.bool_val, true);
    assert.equal(fp.attributes['driver.nix.version']?.string_val, '0.1.0');
    assert.equal(fp.attributes['driver.nix.runtime']?.string_val, 'bwrap');
    const nix = spawnSync('nix', ['--version'], { encoding: 'utf8' });
    if (nix.status === 0) {
      assert.equal(fp.attributes['driver.nix.nix_version']?.string_val, /(\d+\.\d+\S*)/.exec(nix.stdout)?.[1]);
    }
    if (fp.health === 'HEALTHY') assert.equal(fp.health_description, 'healthy');
    else assert.notEqual(fp.health_description, '');
  });

  it('Fingerprint is UNHEALTHY with an install hint when nix is not on PATH', async () => {
    const emptyDir = mkdtempSync(join(tmpdir(), 'nix-plugin-path-'));
    try {
      const p = await plugin({ PATH: emptyDir });
      const fp = await firstFingerprint(p);
      assert.equal(fp.health, 'UNHEALTHY');
      assert.match(fp.health_description, /nix not found on the agent's PATH; fix: install Nix \(Debian\/Ubuntu: apt-get install nix-bin\) or set nix_bin/);
      assert.match(fp.health_description, /bwrap not found on the agent's PATH; fix: install bubblewrap/);
      assert.equal(fp.attributes['driver.nix']?.bool_val, true);
      assert.equal(fp.attributes['driver.nix.nix_version'], undefined);
    } finally {
      rmSync(emptyDir, { recursive: true, force: true });
    }
  });

  it("TaskEvents stays open; unknown tasks fail with Nomad's not-found text", async () => {
    const p = await plugin();
    const events = p.clients.driver.TaskEvents({});
    let ended = false;
    events.on('end', () => (ended = true));
    events.on('error', () => (ended = true));
    await assert.rejects(call(p.clients.driver, 'ExecTask', { task_id: 'a/b/c', command: ['true'] }), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND);
      assert.equal(e.details, 'task not found for given id');
      return true;
    });
    await assert.rejects(call(p.clients.driver, 'WaitTask', { task_id: 'a/b/c' }), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND);
      assert.equal(e.details, 'task not found for given id');
      return true;
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ended, false);
    events.cancel();
  });
});

describe('gRPC status mapping', () => {
  it('FAILED_PRECONDITION carries a RecoverableError detail Nomad can read', async () => {
    const { toGrpcError } = await import('../src/rpc/status.js');
    const { failure } = await import('../src/errors.js');
    const status = toGrpcError(failure('start task', 'nix-daemon busy', { code: 'failed_precondition', recoverable: true }));
    assert.equal(status.code, grpc.status.FAILED_PRECONDITION);
    const bytes = status.metadata?.get(STATUS_DETAILS_KEY)[0];
    assert.ok(Buffer.isBuffer(bytes));
    assert.equal(decodeRecoverable(bytes), true);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaskConfig__Output } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskConfig.js';
import { Packr } from 'msgpackr';
import { checkDriverStateLimits, fromProtoStartTask, fromProtoTaskConfig } from './codec.js';

/** A TaskConfig as proto-loader decodes it (defaults filled in). */
function taskConfig(fields: Partial<TaskConfig__Output>): TaskConfig__Output {
  return {
    id: 'a1/main/1',
    name: 'main',
    alloc_id: 'a1',
    job_name: 'j',
    task_group_name: 'g',
    namespace: 'default',
    env: {},
    device_env: {},
    user: '',
    alloc_dir: '/opt/nomad/alloc/a1',
    stdout_path: '/dev/null',
    stderr_path: '/dev/null',
    msgpack_driver_config: Buffer.from([0x80]),
    mounts: [],
    devices: [],
    resources: null,
    network_isolation_spec: null,
    dns: null,
    node_name: '',
    node_id: '',
    parent_job_id: '',
    job_id: 'j',
    ...fields,
  } as TaskConfig__Output;
}

describe('fromProtoTaskConfig', () => {
  it("carries Nomad's mounts (volume_mount) and devices (device plugins) into the task request", () => {
    const request = fromProtoTaskConfig(
      taskConfig({
        mounts: [{ task_path: '/data', host_path: '/srv/data', readonly: true, propagation_mode: 'private', selinux_label: '', request_name: 'data' }],
        devices: [{ task_path: '/dev/fuse', host_path: '/dev/fuse', cgroup_permissions: 'rw' }],
      }),
    );
    assert.deepEqual(request.mounts, [{ taskPath: '/data', hostPath: '/srv/data', readOnly: true, propagationMode: 'private' }]);
    assert.deepEqual(request.devices, [{ taskPath: '/dev/fuse', hostPath: '/dev/fuse', permissions: 'rw' }]);
    assert.deepEqual(fromProtoTaskConfig(taskConfig({})).mounts, []);
  });

  it('carries the node the task runs on (TaskConfig node_id, node_name): the orphan sweep keeps to its own node', () => {
    const request = fromProtoTaskConfig(taskConfig({ node_id: '0b6c7a1e-1111-4222-8333-444455556666', node_name: 'client-1' }));
    assert.equal(request.nodeId, '0b6c7a1e-1111-4222-8333-444455556666');
    assert.equal(request.nodeName, 'client-1');
  });
});

describe('the verb of a TaskConfig failure', () => {
  it('names the call: RecoverTask fails to recover the task, not to start it', () => {
    assert.throws(() => fromProtoTaskConfig(undefined, { withDriverConfig: false }), {
      name: 'DriverError',
      code: 'invalid_argument',
      message: 'failed to recover task: the request has no task; fix: use a Nomad client of version 1.8 or newer: it sends the task with the request',
    });
    assert.throws(() => fromProtoStartTask(null), {
      message: 'failed to start task: the request has no task; fix: use a Nomad client of version 1.8 or newer: it sends the task with the request',
    });
  });
});

describe('input limits at the edge (fromProtoTaskConfig, checkDriverStateLimits)', () => {
  const packr = new Packr({ useRecords: false });
  const rejects = (fields: Partial<TaskConfig__Output>, message: string) =>
    assert.throws(() => fromProtoTaskConfig(taskConfig(fields)), { name: 'DriverError', code: 'invalid_argument', message });
  const config = (value: unknown) => ({ msgpack_driver_config: packr.pack(value) });

  it('accepts a task at its limits', () => {
    const storePath = `/nix/store/${'a'.repeat(32)}-app`;
    const request = fromProtoStartTask(
      taskConfig({
        ...config({ store_path: storePath, command: 'c'.repeat(4096), args: Array.from({ length: 1024 }, () => 'a') }),
        env: { K: 'v'.repeat(131_070) },
      }),
    );
    assert.equal(request.config.args.length, 1024);
  });

  it('names the field, its size, the limit and the fix', () => {
    rejects(
      config({ command: 'c'.repeat(200_000) }),
      'failed to decode task config: command has 200000 characters, more than the limit of 131072; fix: shorten command to at most 131072 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      config({ command: 'c'.repeat(5000) }),
      'failed to start task: config.command has 5000 characters, more than the limit of 4096; fix: shorten config.command to at most 4096 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      config({ flake: `path:/x#${'a'.repeat(4100)}` }),
      'failed to start task: config.flake has 4108 characters, more than the limit of 4096; fix: shorten config.flake to at most 4096 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      config({ packages: ['/nix/store/a', 'p'.repeat(4097)] }),
      'failed to start task: config.packages[1] has 4097 characters, more than the limit of 4096; fix: shorten config.packages[1] to at most 4096 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      config({ args: Array.from({ length: 1025 }, () => 'a') }),
      'failed to decode task config: args has 1025 entries, more than the limit of 1024; fix: shorten args to at most 1024 entries (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      config({ args: Array.from({ length: 10 }, () => 'a'.repeat(120_000)) }),
      'failed to decode task config: task config has 1200059 bytes, more than the limit of 1048576; fix: shorten task config to at most 1048576 bytes (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      { env: { BIG: 'v'.repeat(131_070) } },
      'failed to start task: env.BIG has 131074 characters, more than the limit of 131072; fix: shorten env.BIG to at most 131072 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      { env: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`K${i}`, 'v'.repeat(120_000)])) },
      'failed to start task: the command line (args and env) has 1200040 bytes, more than the limit of 1048576; fix: shorten the command line (args and env) to at most 1048576 bytes (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      { alloc_dir: `/${'d'.repeat(5000)}` },
      'failed to start task: alloc_dir has 5001 characters, more than the limit of 4096; fix: shorten alloc_dir to at most 4096 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
    rejects(
      { id: 'i'.repeat(2000) },
      'failed to start task: id has 2000 characters, more than the limit of 1024; fix: shorten id to at most 1024 characters (pass large data as a file, e.g. an artifact or template, not inline)',
    );
  });

  it('refuses deep nesting before decoding it (10,000 levels: no stack overflow)', () => {
    const deep = Buffer.concat([Buffer.from([0x81, 0xa4, ...Buffer.from('args')]), Buffer.alloc(10_000, 0x91), Buffer.from([0xc0])]);
    rejects(
      { msgpack_driver_config: deep },
      `failed to decode task config: args[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]… is nested more than 32 levels deep; fix: flatten args[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]…; the driver accepts values nested at most 32 levels deep`,
    );
  });

  it('bounds RecoverTask driver_state: size and JSON nesting', () => {
    assert.throws(() => checkDriverStateLimits(Buffer.alloc(2 * 1024 * 1024, 0x20)), {
      code: 'invalid_argument',
      message:
        'failed to recover task: driver_state has 2097152 bytes, more than the limit of 1048576; fix: shorten driver_state to at most 1048576 bytes (pass large data as a file, e.g. an artifact or template, not inline)',
    });
    assert.throws(() => checkDriverStateLimits(Buffer.from('['.repeat(100_000))), {
      code: 'invalid_argument',
      message:
        'failed to recover task: driver_state is nested more than 32 levels deep; fix: flatten driver_state; the driver accepts values nested at most 32 levels deep',
    });
    checkDriverStateLimits(Buffer.from(JSON.stringify({ a: [[{ b: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[' }]] })));
  });
});

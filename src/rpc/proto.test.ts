/**
 * The service definitions built from the prebuilt descriptor (src/gen/descriptor.ts) against
 * @grpc/proto-loader's from the .proto files: same services, methods, paths and streaming
 * kinds, and the same bytes and objects through their serializers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import { LOADER_OPTIONS, PROTO_FILES, loadProtos, protoDir } from './proto.js';

const reference = protoLoader.loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
const SERVICES = [
  'grpc.health.v1.Health',
  'plugin.GRPCBroker',
  'plugin.GRPCController',
  'plugin.GRPCStdio',
  'hashicorp.nomad.plugins.base.proto.BasePlugin',
  'hashicorp.nomad.plugins.drivers.proto.Driver',
] as const;

function served(name: string): grpc.ServiceDefinition {
  let node: unknown = loadProtos();
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part];
  return (node as { service: grpc.ServiceDefinition }).service;
}

const expected = (name: string) => reference[name] as grpc.ServiceDefinition;

/** Populated messages of the kinds the wire carries: int64, enums, bytes, maps, oneofs, nested, repeated. */
const SAMPLES: Record<string, { request?: unknown; response?: unknown }> = {
  'hashicorp.nomad.plugins.drivers.proto.Driver.StartTask': {
    request: {
      task: {
        id: 'a1/web/0123',
        name: 'web',
        env: { A: '1', 'B C': 'ü' },
        resources: { allocated_resources: { cpu: { cpu_shares: 250 }, memory: { memory_mb: 2 ** 40 } } },
        msgpack_driver_config: Buffer.from([0x81, 0xa1, 0x61, 0x01]),
        mounts: [{ task_path: '/a', host_path: '/b', readonly: true }],
      },
    },
    response: { result: { exit_code: 3, signal: 9, oom_killed: true }, handle: { version: 2, state: 'EXITED', driver_state: Buffer.from('state') } },
  },
  'hashicorp.nomad.plugins.drivers.proto.Driver.Capabilities': {
    response: { capabilities: { send_signals: true, fs_isolation: 'IMAGE', network_isolation_modes: ['HOST', 'GROUP'], mount_configs: 'ANY_MOUNTS' } },
  },
  'hashicorp.nomad.plugins.drivers.proto.Driver.Fingerprint': {
    response: {
      health: 'HEALTHY',
      health_description: 'ok',
      attributes: { 'driver.nix': { bool_val: true }, n: { int_val: -(2 ** 40) }, f: { float_val: 1.5 } },
    },
  },
  'hashicorp.nomad.plugins.base.proto.BasePlugin.ConfigSchema': {
    response: {
      spec: {
        object: {
          attributes: { runtime: { default: { primary: { attr: { name: 'runtime', type: 'string' } }, default: { literal: { value: '"bwrap"' } } } } },
        },
      },
    },
  },
  'hashicorp.nomad.plugins.drivers.proto.Driver.ExecTaskStreaming': {
    request: { setup: { task_id: 't', command: ['sh'], tty: true }, stdin: { data: Buffer.from('ls\n') }, tty_size: { height: 24, width: 80 } },
    response: { stdout: { data: Buffer.from('x'), close: false }, exited: true, result: { exit_code: 0 } },
  },
};

describe('loadProtos (prebuilt descriptor)', () => {
  for (const service of SERVICES) {
    it(`serves ${service} with proto-loader's methods, paths and streaming kinds`, () => {
      const project = (definition: grpc.ServiceDefinition) =>
        Object.entries(definition).map(([method, m]) => [method, m.path, m.requestStream, m.responseStream, m.originalName]);
      assert.deepEqual(project(served(service)), project(expected(service)));
    });

    it(`decodes an empty message of every ${service} method as proto-loader does (defaults, enums, oneofs)`, () => {
      for (const [method, m] of Object.entries(served(service))) {
        const reference = expected(service)[method];
        assert.ok(reference !== undefined, method);
        assert.deepEqual(m.requestDeserialize(Buffer.alloc(0)), reference.requestDeserialize(Buffer.alloc(0)), `${method} request`);
        assert.deepEqual(m.responseDeserialize(Buffer.alloc(0)), reference.responseDeserialize(Buffer.alloc(0)), `${method} response`);
      }
    });
  }

  for (const [fullName, sample] of Object.entries(SAMPLES)) {
    it(`writes and reads ${fullName} messages byte for byte as proto-loader does`, () => {
      const service = fullName.slice(0, fullName.lastIndexOf('.'));
      const method = fullName.slice(fullName.lastIndexOf('.') + 1);
      const ours = served(service)[method];
      const theirs = expected(service)[method];
      assert.ok(ours !== undefined && theirs !== undefined);
      if (sample.request !== undefined) {
        const bytes = theirs.requestSerialize(sample.request);
        assert.ok(bytes.length > 10);
        assert.deepEqual(ours.requestSerialize(sample.request), bytes);
        assert.deepEqual(ours.requestDeserialize(bytes), theirs.requestDeserialize(bytes));
      }
      if (sample.response !== undefined && method !== 'TaskStats') {
        const bytes = theirs.responseSerialize(sample.response);
        assert.ok(bytes.length > 4);
        assert.deepEqual(ours.responseSerialize(sample.response), bytes);
        assert.deepEqual(ours.responseDeserialize(bytes), theirs.responseDeserialize(bytes));
      }
    });
  }
});

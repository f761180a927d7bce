/**
 * Loads our .proto files (proto/, wire-compatible with Nomad's and go-plugin's) at run time
 * with @grpc/proto-loader. Field names keep their .proto spelling (`Attr`, `PercentTicks`,
 * `hostsConfig`), 64-bit integers are JS numbers and enums are their names.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ProtoGrpcType as BaseProto } from '../gen/base.js';
import type { ProtoGrpcType as DriverProto } from '../gen/driver.js';
import type { ProtoGrpcType as BrokerProto } from '../gen/grpc_broker.js';
import type { ProtoGrpcType as ControllerProto } from '../gen/grpc_controller.js';
import type { ProtoGrpcType as StdioProto } from '../gen/grpc_stdio.js';
import type { ProtoGrpcType as HealthProto } from '../gen/health.js';
import type { TaskStatsResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStatsResponse.js';
import { encodeTaskStatsResponse } from './task-stats-wire.js';

export const PROTO_FILES = [
  'grpc/health/v1/health.proto',
  'plugin/grpc_broker.proto',
  'plugin/grpc_controller.proto',
  'plugin/grpc_stdio.proto',
  'plugins/base/proto/base.proto',
  'plugins/drivers/proto/driver.proto',
] as const;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** proto/ at the repository root; found from both src/rpc (tsx) and dist/src/rpc (built). */
export function protoDir(): string {
  for (const relative of ['../../proto', '../../../proto']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}/plugins/drivers/proto/driver.proto`)) return dir;
  }
  throw new Error(`failed to find proto/ next to ${fileURLToPath(import.meta.url)}: the package is incomplete; reinstall it`);
}

export type Protos = BaseProto & DriverProto & BrokerProto & ControllerProto & StdioProto & HealthProto;

/**
 * Every service definition the plugin serves (and our tests call). Driver.TaskStats responses
 * go through the direct encoder of task-stats-wire.ts, the generic serializer only for what
 * that encoder leaves out.
 */
export function loadProtos(): Protos {
  const definition = protoLoader.loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  const taskStats = (definition['hashicorp.nomad.plugins.drivers.proto.Driver'] as grpc.ServiceDefinition | undefined)?.TaskStats;
  if (taskStats !== undefined) {
    const generic = taskStats.responseSerialize;
    (taskStats as { responseSerialize: grpc.serialize<TaskStatsResponse> }).responseSerialize = (response) =>
      encodeTaskStatsResponse(response) ?? generic(response);
  }
  return grpc.loadPackageDefinition(definition) as unknown as Protos;
}

/**
 * The gRPC service definitions the plugin serves (and our tests call), built from the protobufjs
 * JSON descriptor that `npm run gen` writes from proto/ (src/gen/descriptor.ts): no .proto text
 * is parsed at start, and only protobufjs's light build (no parser) and grpc-js are loaded.
 * The definitions behave as @grpc/proto-loader's with LOADER_OPTIONS: field names keep their
 * .proto spelling (`Attr`, `PercentTicks`, `hostsConfig`), 64-bit integers are JS numbers and
 * enums are their names (src/rpc/proto.test.ts compares them with proto-loader's).
 */
import { loadPackageDefinition, type MethodDefinition, type ServiceDefinition, type deserialize, type serialize } from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs/light.js';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PROTO_DESCRIPTOR } from '../gen/descriptor.js';
import type { ProtoGrpcType as BaseProto } from '../gen/base.js';
import type { ProtoGrpcType as DriverProto } from '../gen/driver.js';
import type { ProtoGrpcType as BrokerProto } from '../gen/grpc_broker.js';
import type { ProtoGrpcType as ControllerProto } from '../gen/grpc_controller.js';
import type { ProtoGrpcType as StdioProto } from '../gen/grpc_stdio.js';
import type { ProtoGrpcType as HealthProto } from '../gen/health.js';
import type { TaskStatsResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/TaskStatsResponse.js';
import { encodeTaskStatsResponse } from './task-stats-wire.js';

/** The files whose services the plugin serves (tests load them with proto-loader to compare). */
export const PROTO_FILES = [
  'grpc/health/v1/health.proto',
  'plugin/grpc_broker.proto',
  'plugin/grpc_controller.proto',
  'plugin/grpc_stdio.proto',
  'plugins/base/proto/base.proto',
  'plugins/drivers/proto/driver.proto',
] as const;

/** proto-loader's options our definitions follow (keepCase is applied by npm run gen). */
export const LOADER_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} satisfies protoLoader.Options;

/** What protobufjs's toObject gets: LOADER_OPTIONS without the parser's keepCase. */
const CONVERSION: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, oneofs: true };

/** proto/ at the repository root; found from both src/rpc (tsx) and dist/src/rpc (built). */
export function protoDir(): string {
  for (const relative of ['../../proto', '../../../proto']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}/plugins/drivers/proto/driver.proto`)) return dir;
  }
  throw new Error(`failed to find proto/ next to ${fileURLToPath(import.meta.url)}: the package is incomplete; reinstall it`);
}

export type Protos = BaseProto & DriverProto & BrokerProto & ControllerProto & StdioProto & HealthProto;

function serializer(type: protobuf.Type): serialize<unknown> {
  return (value) => {
    if (Array.isArray(value)) throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    return type.encode(type.fromObject(value as Record<string, unknown>)).finish() as Buffer;
  };
}

function deserializer(type: protobuf.Type): deserialize<unknown> {
  return (bytes) => type.toObject(type.decode(bytes), CONVERSION);
}

/** A service's methods as grpc-js wants them (proto-loader's definition without the reflection data). */
function serviceDefinition(service: protobuf.Service): ServiceDefinition {
  const name = service.fullName.slice(1); // ".plugin.GRPCBroker" → "plugin.GRPCBroker"
  const definition: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (request === null || response === null)
      throw new Error(`failed to resolve the messages of ${name}.${method.name}: src/gen/descriptor.ts lacks them; fix: run npm run gen and build again`);
    definition[method.name] = {
      path: `/${name}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: `${method.name.charAt(0).toLowerCase()}${method.name.slice(1)}`,
    };
  }
  return definition;
}

/**
 * An enum with aliases (`allow_alias`, e.g. MountConfigs' UNKNOWN_MOUNTS = ANY_MOUNTS = 0) is
 * read back by the name declared first, as protobufjs's parser (proto-loader) does; its JSON
 * reader keeps the last one.
 */
function firstNameWins(namespace: protobuf.NamespaceBase): void {
  for (const child of namespace.nestedArray) {
    if (child instanceof protobuf.Enum) {
      for (const [name, id] of Object.entries(child.values).reverse()) child.valuesById[id] = name;
    } else if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) firstNameWins(child);
  }
}

function services(namespace: protobuf.NamespaceBase): protobuf.Service[] {
  return namespace.nestedArray.flatMap((child) => {
    if (child instanceof protobuf.Service) return [child];
    return child instanceof protobuf.Namespace || child instanceof protobuf.Type ? services(child) : [];
  });
}

/**
 * Every service definition of proto/, keyed as grpc.loadPackageDefinition wants. Driver.TaskStats
 * responses go through the direct encoder of task-stats-wire.ts, the generic serializer only
 * for what that encoder leaves out.
 */
export function loadProtos(): Protos {
  const root = protobuf.Root.fromJSON(PROTO_DESCRIPTOR as protobuf.INamespace);
  root.resolveAll();
  firstNameWins(root);
  const definition: Record<string, ServiceDefinition> = {};
  for (const service of services(root)) definition[service.fullName.slice(1)] = serviceDefinition(service);
  const taskStats = definition['hashicorp.nomad.plugins.drivers.proto.Driver']?.TaskStats;
  if (taskStats !== undefined) {
    const generic = taskStats.responseSerialize;
    (taskStats as { responseSerialize: serialize<TaskStatsResponse> }).responseSerialize = (response) => encodeTaskStatsResponse(response) ?? generic(response);
  }
  return loadPackageDefinition(definition as Parameters<typeof loadPackageDefinition>[0]) as unknown as Protos;
}

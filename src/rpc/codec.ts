/**
 * Domain values ⇄ protobuf messages. The only module (with the services) that knows the
 * message shapes. Pure: no I/O.
 */
import type { HclSpec } from '../config/hclspec.js';
import type { DriverCapabilities } from '../driver/capabilities.js';
import type { AgentConfig } from '../driver/driver.js';
import type { TaskEvent } from '../driver/events.js';
import type { AttributeValue, Fingerprint } from '../driver/fingerprint.js';
import type { NomadConfig__Output } from '../gen/hashicorp/nomad/plugins/base/proto/NomadConfig.js';
import type { DriverCapabilities as ProtoCapabilities } from '../gen/hashicorp/nomad/plugins/drivers/proto/DriverCapabilities.js';
import type { DriverTaskEvent } from '../gen/hashicorp/nomad/plugins/drivers/proto/DriverTaskEvent.js';
import type { FingerprintResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/FingerprintResponse.js';
import type { Spec } from '../gen/hashicorp/nomad/plugins/shared/hclspec/Spec.js';
import type { Attribute } from '../gen/hashicorp/nomad/plugins/shared/structs/Attribute.js';
import type { Timestamp } from '../gen/google/protobuf/Timestamp.js';

/** Our HclSpec has exactly the message's shape (oneof `block` plus the chosen member). */
export function toProtoSpec(spec: HclSpec): Spec {
  return spec as unknown as Spec;
}

export function toProtoAttribute(value: AttributeValue): Attribute {
  switch (value.kind) {
    case 'string':
      return { string_val: value.value };
    case 'int':
      return { int_val: value.value };
    case 'bool':
      return { bool_val: value.value };
  }
}

const HEALTH = { undetected: 'UNDETECTED', unhealthy: 'UNHEALTHY', healthy: 'HEALTHY' } as const;

export function toFingerprintResponse(fingerprint: Fingerprint): FingerprintResponse {
  const attributes: Record<string, Attribute> = {};
  for (const [key, value] of Object.entries(fingerprint.attributes)) attributes[key] = toProtoAttribute(value);
  return {
    attributes,
    health: HEALTH[fingerprint.health],
    health_description: fingerprint.description,
  };
}

export function toProtoCapabilities(caps: DriverCapabilities): ProtoCapabilities {
  return {
    send_signals: caps.sendSignals,
    exec: caps.exec,
    fs_isolation: caps.fsIsolation,
    network_isolation_modes: [...caps.networkIsolationModes],
    must_create_network: caps.mustCreateNetwork,
    mount_configs: caps.mountConfigs,
    disable_log_collection: caps.disableLogCollection,
    dynamic_workload_users: caps.dynamicWorkloadUsers,
  };
}

/** SetConfig's nomad_config, when present (absent on the agent's validation launch). */
export function fromNomadConfig(config: NomadConfig__Output | null | undefined): AgentConfig | undefined {
  const driver = config?.driver;
  if (driver === null || driver === undefined) return undefined;
  return { clientMinPort: driver.ClientMinPort, clientMaxPort: driver.ClientMaxPort };
}

export function toTimestamp(date: Date): Timestamp {
  const ms = date.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function toDriverTaskEvent(event: TaskEvent): DriverTaskEvent {
  return {
    task_id: event.taskId,
    alloc_id: event.allocId,
    task_name: event.taskName,
    timestamp: toTimestamp(event.timestamp),
    message: event.message,
    annotations: { ...event.annotations },
  };
}

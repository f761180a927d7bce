/**
 * hashicorp.nomad.plugins.base.proto.BasePlugin: what Nomad asks every plugin first.
 */
import { pluginConfigFields, decodePluginConfig } from '../config/plugin-config.js';
import { decodeCtyMsgpack } from '../config/cty-msgpack.js';
import { toHclSpec } from '../config/schema.js';
import type { NixDriver } from '../driver/driver.js';
import type { BasePluginHandlers } from '../gen/hashicorp/nomad/plugins/base/proto/BasePlugin.js';
import type { Logger } from '../log/logger.js';
import { DRIVER_API_VERSION, PLUGIN_NAME, PLUGIN_VERSION } from '../version.js';
import { fromNomadConfig, toProtoSpec } from './codec.js';
import { unary } from './handlers.js';

export function createBasePluginHandlers(driver: NixDriver, logger: Logger): BasePluginHandlers {
  return {
    /**
     * PluginInfo: called at discovery and after a reattach. Nomad keys the plugin by
     * (name, type), requires plugin_api_versions to contain v0.1.0 and plugin_version to be semver.
     */
    PluginInfo: unary(logger, 'PluginInfo', () => ({
      type: 'DRIVER',
      plugin_api_versions: [DRIVER_API_VERSION],
      plugin_version: PLUGIN_VERSION,
      name: PLUGIN_NAME,
    })),

    /**
     * ConfigSchema: the hclspec Nomad decodes the client's `plugin "nix" { config {} }` block
     * with; unknown attributes there make the agent refuse to start.
     */
    ConfigSchema: unary(logger, 'ConfigSchema', () => ({ spec: toProtoSpec(toHclSpec(pluginConfigFields)) })),

    /**
     * SetConfig: the block's cty value as msgpack, plus the agent's own config (absent on the
     * validation launch). A bad value fails with INVALID_ARGUMENT naming the field; on the
     * validation launch that stops the agent with our message.
     */
    SetConfig: unary(logger, 'SetConfig', (request) => {
      const raw = decodeCtyMsgpack(request.msgpack_config ?? new Uint8Array(), 'plugin config');
      driver.setConfig(decodePluginConfig(raw), fromNomadConfig(request.nomad_config));
      return {};
    }),
  };
}

/**
 * The driver and the handlers of the application's services (BasePlugin, Driver): the part of
 * the plugin the handshake does not need. main.ts imports this module only after it has printed
 * the handshake line, so msgpackr and the driver's modules load while Nomad
 * connects instead of before (issue 16: plugin start ≤ 100 ms to the handshake line).
 */
import { NixDriver } from '../driver/driver.js';
import { createHostProbe } from '../driver/probe-host.js';
import type { Level } from '../log/hclog-format.js';
import type { Logger } from '../log/logger.js';
import { createBasePluginHandlers } from '../rpc/base-service.js';
import { createDriverHandlers } from '../rpc/driver-service.js';
import { hostRuntimes } from '../runtime/select.js';
import { PLUGIN_NAME } from '../version.js';
import type { AppHandlers } from './server.js';

export interface App {
  readonly driver: NixDriver;
  readonly handlers: AppHandlers;
}

/** The driver on this host (`logger` is the plugin's root logger) and its services' handlers. */
export function createApp(options: { readonly logger: Logger; readonly setLogLevel: (level: Level) => void }): App {
  const { logger } = options;
  const driver = new NixDriver({
    logger: logger.child({ '@module': `${PLUGIN_NAME}.driver` }),
    probe: createHostProbe({ pathEnv: process.env.PATH, euid: () => process.geteuid?.() ?? -1 }),
    runtimes: hostRuntimes,
    setLogLevel: options.setLogLevel,
  });
  const rpcLogger = logger.child({ '@module': `${PLUGIN_NAME}.rpc` });
  return { driver, handlers: { base: createBasePluginHandlers(driver, rpcLogger), driver: createDriverHandlers(driver, rpcLogger) } };
}

/**
 * The plugin's gRPC server: every service on one unix socket, created the way go-plugin does
 * (in PLUGIN_UNIX_SOCKET_DIR or the temp dir, mode 0600, or 0660 for PLUGIN_UNIX_SOCKET_GROUP).
 */
import * as grpc from '@grpc/grpc-js';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NixDriver } from '../driver/driver.js';
import { INPUT_LIMITS } from '../config/input-limits.js';
import { failure } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { createBasePluginHandlers } from '../rpc/base-service.js';
import { createDriverHandlers } from '../rpc/driver-service.js';
import { loadProtos } from '../rpc/proto.js';
import { createBrokerHandlers, createControllerHandlers, createHealthHandlers, createStdioHandlers } from './go-plugin-services.js';

export interface PluginServer {
  readonly socketPath: string;
  /** Stops serving (in-flight streams are cancelled) and removes the socket. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

export interface ServeOptions {
  readonly driver: NixDriver;
  readonly logger: Logger;
  readonly env: NodeJS.ProcessEnv;
  /** Called when go-plugin's controller asks the plugin to exit. */
  readonly onControllerShutdown: () => void;
  /**
   * PLUGIN_UNIX_SOCKET_GROUP (a group name or number) → its gid, undefined when no such group;
   * host I/O, so main.ts passes host/unix-group.ts resolveGroupId in.
   */
  readonly resolveGroup: (group: string) => number | undefined;
}

/** A fresh socket path `plugin<digits>` in the directory go-plugin would use. */
export function chooseSocketPath(env: NodeJS.ProcessEnv): string {
  const dir = env.PLUGIN_UNIX_SOCKET_DIR !== undefined && env.PLUGIN_UNIX_SOCKET_DIR !== '' ? env.PLUGIN_UNIX_SOCKET_DIR : tmpdir();
  for (;;) {
    const path = join(dir, `plugin${randomInt(100_000_000, 999_999_999)}`);
    if (!existsSync(path)) return path;
  }
}

export async function servePlugin(options: ServeOptions): Promise<PluginServer> {
  const { driver, logger, env } = options;
  const protos = loadProtos();
  const server = new grpc.Server({
    // bounded input: a bigger message fails with RESOURCE_EXHAUSTED before it is decoded
    'grpc.max_receive_message_length': INPUT_LIMITS.messageBytes,
    'grpc.max_send_message_length': -1,
  });
  server.addService(protos.grpc.health.v1.Health.service, createHealthHandlers());
  server.addService(protos.plugin.GRPCController.service, createControllerHandlers(options.onControllerShutdown));
  server.addService(protos.plugin.GRPCStdio.service, createStdioHandlers());
  server.addService(protos.plugin.GRPCBroker.service, createBrokerHandlers());
  server.addService(protos.hashicorp.nomad.plugins.base.proto.BasePlugin.service, createBasePluginHandlers(driver, logger.child({ '@module': 'nix.rpc' })));
  server.addService(protos.hashicorp.nomad.plugins.drivers.proto.Driver.service, createDriverHandlers(driver, logger.child({ '@module': 'nix.rpc' })));

  const socketPath = chooseSocketPath(env);
  const group = env.PLUGIN_UNIX_SOCKET_GROUP;
  const gid = group === undefined || group === '' ? undefined : options.resolveGroup(group);
  if (group !== undefined && group !== '' && gid === undefined) {
    throw failure('listen on the plugin socket', `PLUGIN_UNIX_SOCKET_GROUP ${JSON.stringify(group)} is not a known group`, {
      fix: 'set it to an existing group name or a numeric gid, or unset it',
    });
  }
  // the socket is created with the process umask: make it owner-only from the first instant
  const previousUmask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (error) => (error ? reject(error) : resolve()));
    });
  } catch (error) {
    throw failure('listen on the plugin socket', `${socketPath}: ${(error as Error).message}`, {
      fix: 'make PLUGIN_UNIX_SOCKET_DIR (or the temp dir) a writable directory',
      cause: error,
    });
  } finally {
    process.umask(previousUmask);
  }
  if (gid !== undefined) {
    chownSync(socketPath, -1, gid);
    chmodSync(socketPath, 0o660);
  }

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close(graceMs = 500) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }).finally(() => rmSync(socketPath, { force: true }));
      return closing;
    },
  };
}

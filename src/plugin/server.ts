/**
 * The plugin's gRPC server: every service on one unix socket, created the way go-plugin does
 * (in PLUGIN_UNIX_SOCKET_DIR or the temp dir, mode 0600, or 0660 for PLUGIN_UNIX_SOCKET_GROUP).
 * It listens before the driver is loaded (main.ts prints the handshake line first and then
 * loads it): BasePlugin and Driver calls that arrive earlier wait for their handlers.
 */
import * as grpc from '@grpc/grpc-js';
import { randomInt } from 'node:crypto';
import { chmodSync, chownSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INPUT_LIMITS } from '../config/input-limits.js';
import { failure } from '../errors.js';
import type { BasePluginHandlers } from '../gen/hashicorp/nomad/plugins/base/proto/BasePlugin.js';
import type { DriverHandlers } from '../gen/hashicorp/nomad/plugins/drivers/proto/Driver.js';
import { loadProtos } from '../rpc/proto.js';
import { createBrokerHandlers, createControllerHandlers, createHealthHandlers, createStdioHandlers } from './go-plugin-services.js';

export interface PluginServer {
  readonly socketPath: string;
  /** Stops serving (in-flight streams are cancelled) and removes the socket. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** The handlers of the application's services, which need the driver. */
export interface AppHandlers {
  readonly base: BasePluginHandlers;
  readonly driver: DriverHandlers;
}

export interface ServeOptions {
  /**
   * The BasePlugin and Driver handlers, loaded while the server already listens. A call that
   * arrives first waits for them; if they never load, it waits until the process exits (main.ts
   * exits when loading fails).
   */
  readonly app: Promise<AppHandlers>;
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

type AnyHandler = (call: { readonly cancelled?: boolean }, callback?: unknown) => void;

/**
 * Handlers for every method of `service` that call the handler of the same name in `loaded`:
 * directly once it has resolved, after it resolves for a call that comes earlier (a call the
 * client cancelled meanwhile is dropped: its 'cancelled' event has gone by). A request stream
 * buffers its messages until the real handler reads them.
 */
export function deferredHandlers(service: grpc.ServiceDefinition, loaded: Promise<grpc.UntypedServiceImplementation>): grpc.UntypedServiceImplementation {
  let handlers: Record<string, AnyHandler> | undefined;
  const ready = loaded.then(
    (implementation) => {
      handlers = implementation as Record<string, AnyHandler>;
      return handlers;
    },
    () => undefined, // the caller exits the process; waiting calls end with it
  );
  const deferred: Record<string, AnyHandler> = {};
  for (const name of Object.keys(service)) {
    deferred[name] = (call, callback) => {
      if (handlers !== undefined) {
        handlers[name]?.(call, callback);
        return;
      }
      void ready.then((implementation) => {
        if (implementation !== undefined && call.cancelled !== true) implementation[name]?.(call, callback);
      });
    };
  }
  return deferred as grpc.UntypedServiceImplementation;
}

export async function servePlugin(options: ServeOptions): Promise<PluginServer> {
  const { env } = options;
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
  const basePlugin = protos.hashicorp.nomad.plugins.base.proto.BasePlugin.service;
  const driver = protos.hashicorp.nomad.plugins.drivers.proto.Driver.service;
  server.addService(
    basePlugin,
    deferredHandlers(
      basePlugin,
      options.app.then((app) => app.base as grpc.UntypedServiceImplementation),
    ),
  );
  server.addService(
    driver,
    deferredHandlers(
      driver,
      options.app.then((app) => app.driver as grpc.UntypedServiceImplementation),
    ),
  );

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

/**
 * Starts the real plugin executable (dist/src/main.js) the way Nomad's client does — cookie in
 * the environment, stdout and stderr as pipes — reads its handshake line and gives typed gRPC
 * clients on its socket. Used by the driver-level tests.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE } from '../../src/plugin/handshake.js';
import { loadProtos, type Protos } from '../../src/rpc/proto.js';
import type { DriverClient } from '../../src/gen/hashicorp/nomad/plugins/drivers/proto/Driver.js';
import type { BasePluginClient } from '../../src/gen/hashicorp/nomad/plugins/base/proto/BasePlugin.js';
import type { HealthClient } from '../../src/gen/grpc/health/v1/Health.js';
import type { GRPCControllerClient } from '../../src/gen/plugin/GRPCController.js';
import type { GRPCStdioClient } from '../../src/gen/plugin/GRPCStdio.js';

export const MAIN_JS = fileURLToPath(new URL('../../src/main.js', import.meta.url));

let protos: Protos | undefined;
export function protosOnce(): Protos {
  protos ??= loadProtos();
  return protos;
}

export interface PluginClients {
  readonly base: BasePluginClient;
  readonly driver: DriverClient;
  readonly health: HealthClient;
  readonly controller: GRPCControllerClient;
  readonly stdio: GRPCStdioClient;
  close(): void;
}

export function connect(socketPath: string): PluginClients {
  const p = protosOnce();
  const address = `unix:${socketPath}`;
  const creds = grpc.credentials.createInsecure();
  const base = new p.hashicorp.nomad.plugins.base.proto.BasePlugin(address, creds);
  // one channel for all stubs, as go-plugin's client does
  const channelOverride = base.getChannel();
  const options = { channelOverride };
  const driver = new p.hashicorp.nomad.plugins.drivers.proto.Driver(address, creds, options);
  const health = new p.grpc.health.v1.Health(address, creds, options);
  const controller = new p.plugin.GRPCController(address, creds, options);
  const stdio = new p.plugin.GRPCStdio(address, creds, options);
  return { base, driver, health, controller, stdio, close: () => base.close() };
}

export interface RunningPlugin {
  readonly child: ChildProcess;
  readonly handshake: string;
  readonly socketPath: string;
  readonly stdoutLines: string[];
  readonly stderrLines: string[];
  readonly clients: PluginClients;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** The plugin as Nomad finds it in plugin_dir (the launcher `npm run build` writes). */
export const PLUGIN_LAUNCHER = fileURLToPath(new URL('../../../build/plugins/nix', import.meta.url));

/**
 * Starts the plugin: `node [nodeArgs] dist/src/main.js`, or `argv` (e.g. PLUGIN_LAUNCHER or the
 * single-file plugin of `npm run package`, as the startup benchmark compares them). `nodeArgs`
 * are node options before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses).
 */
export async function startPlugin(
  options: { env?: Record<string, string | undefined>; argv?: readonly [string, ...string[]]; nodeArgs?: readonly string[] } = {},
): Promise<RunningPlugin> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, [MAGIC_COOKIE_KEY]: MAGIC_COOKIE_VALUE, ...options.env })) {
    if (v !== undefined) env[k] = v;
  }
  const [file, ...args] = options.argv ?? [process.execPath, ...(options.nodeArgs ?? []), MAIN_JS];
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const stdoutLines: string[] = [];
  const stderrLines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderrLines.push(line));
  const stdout = createInterface({ input: child.stdout! });
  stdout.on('line', (line) => stdoutLines.push(line));
  const first = await Promise.race([
    once(stdout, 'line').then(([line]) => String(line)),
    exited.then((code) => {
      throw new Error(`plugin exited (${code}) before its handshake; stderr:\n${stderrLines.join('\n')}`);
    }),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no handshake within 10 s')), 10_000).unref()),
  ]);
  const socketPath = first.split('|')[3] ?? '';
  const clients = connect(socketPath);
  return {
    child,
    handshake: first,
    socketPath,
    stdoutLines,
    stderrLines,
    clients,
    exited,
    kill: (signal = 'SIGKILL') => {
      clients.close();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Promise form of a unary call: resolves with the response, rejects with the ServiceError. */
export function call<Req, Res>(client: grpc.Client, method: string, request: Req, deadlineMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: Req, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Res) => void) => void>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (error, response) => (error ? reject(error) : resolve(response as Res)));
  });
}

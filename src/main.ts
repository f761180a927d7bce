#!/usr/bin/env node
/**
 * Composition root of the `nix` plugin executable. Nomad's client starts it from plugin_dir
 * with NOMAD_PLUGIN_MAGIC_COOKIE set, reads the handshake line from stdout and talks gRPC over
 * the unix socket named there. Rules from go-plugin (see proto/ and the protocol notes):
 * - nothing but the handshake line ever reaches stdout;
 * - logs are hclog JSON lines on stderr;
 * - SIGINT is ignored (a Ctrl-C aimed at a foreground agent reaches its plugins too);
 * - SIGTERM and GRPCController.Shutdown end the plugin cleanly, socket removed;
 * - dead stdout/stderr pipes (EPIPE after an agent crash) never kill the plugin, because the
 *   agent reattaches to it and the tasks it supervises.
 * Only what the handshake needs loads before the line is printed (the gRPC server, listening);
 * the driver (plugin/app.ts) is imported right after it, and calls that arrive meanwhile wait.
 */
import { errorMessage } from './errors.js';
import { resolveGroupId } from './host/unix-group.js';
import { createLogger, levelFromEnv, stderrSink } from './log/logger.js';
import type { App } from './plugin/app.js';
import { NOT_A_PROGRAM_MESSAGE, handshakeLine, hasMagicCookie, protocolVersionProblem } from './plugin/handshake.js';
import { servePlugin, type AppHandlers, type PluginServer } from './plugin/server.js';
import { PLUGIN_NAME, PLUGIN_VERSION } from './version.js';

async function main(): Promise<void> {
  if (!hasMagicCookie(process.env)) {
    stderrSink(`${NOT_A_PROGRAM_MESSAGE}\n`);
    process.exit(1);
  }
  guardStdio();
  process.on('SIGINT', () => undefined);

  const logger = createLogger({ module: PLUGIN_NAME, level: levelFromEnv(process.env, 'info') });
  process.on('uncaughtException', (error) => {
    logger.error('uncaught exception; exiting (tasks keep running and are recovered on restart)', { err: errorMessage(error), stack: error.stack });
    process.exit(2);
  });
  process.on('unhandledRejection', (reason) => {
    logger.error('unhandled promise rejection', { err: errorMessage(reason) });
  });

  const versionProblem = protocolVersionProblem(process.env);
  if (versionProblem !== undefined) logger.warn(`failed to agree on a protocol version: ${versionProblem}`);

  let app: App | undefined;
  let loaded: (handlers: AppHandlers) => void = () => undefined;
  let notLoaded: (error: unknown) => void = () => undefined;
  const handlers = new Promise<AppHandlers>((resolve, reject) => {
    loaded = resolve;
    notLoaded = reject;
  });

  let server: PluginServer | undefined;
  let exiting = false;
  const exit = (reason: string) => {
    if (exiting) return;
    exiting = true;
    logger.debug('plugin exiting', { reason });
    app?.driver.shutdown();
    void (server?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => exit('SIGTERM'));
  watchParent(() => {
    // The agent died before configuring us: we were a discovery or validation launch (Nomad
    // does not kill that instance when the agent then fails to start). Nothing will reattach.
    // The long-lived instance stays up instead, for the agent's reattach after a crash.
    if (app?.driver.servesAgent !== true) exit('parent exited before the agent configured the plugin');
  });

  const started = performance.now();
  server = await servePlugin({ app: handlers, env: process.env, resolveGroup: resolveGroupId, onControllerShutdown: () => exit('controller shutdown') });
  writeHandshake(handshakeLine(server.socketPath));
  const listening = performance.now();
  try {
    const { createApp } = await import('./plugin/app.js');
    app = createApp({ logger, setLogLevel: (level) => logger.setLevel(level) });
  } catch (error) {
    notLoaded(error);
    throw error;
  }
  loaded(app.handlers);
  logger.info('plugin started', {
    version: PLUGIN_VERSION,
    socket: server.socketPath,
    pid: process.pid,
    duration_ms: Math.round(listening - started),
    // from the process's start (performance's time origin) to the handshake line
    handshake_ms: Math.round(listening),
    driver_load_ms: Math.round(performance.now() - listening),
  });
}

/** Keeps library output off stdout and makes errors on both pipes harmless. */
function guardStdio(): void {
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  const toStderr = (...args: unknown[]) => stderrSink(`${args.map((a) => (typeof a === 'string' ? a : errorMessage(a))).join(' ')}\n`);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}

/** Calls `onOrphaned` once when the parent process (the Nomad agent) is gone. */
function watchParent(onOrphaned: () => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onOrphaned();
  }, 1_000);
  timer.unref();
}

function writeHandshake(line: string): void {
  process.stdout.write(line);
}

main().catch((error: unknown) => {
  stderrSink(`${JSON.stringify({ '@level': 'error', '@message': `failed to start the nix plugin: ${errorMessage(error)}`, '@module': PLUGIN_NAME })}\n`);
  process.exit(1);
});

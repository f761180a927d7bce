/**
 * The plugin's logger: pino, configured to write hclog-compatible JSON lines on stderr, which
 * the Nomad agent re-emits under its own logger (see hclog-format.ts for the rules).
 *
 * Every logger belongs to a module (`@module`, e.g. `nix.driver`), always has a message, and
 * takes typed fields. The level is shared by all loggers and can be changed at run time
 * (environment first, then the plugin config's `log_level`).
 *
 * Writes are synchronous and swallow every error: after a Nomad agent crash the plugin's
 * stderr pipe is dead (EPIPE), and a plugin that dies of that loses the tasks it supervises.
 */
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pino, type Logger as PinoLogger } from 'pino';
import { truncate } from '../errors.js';
import { formatTimestamp, isLevel, levelRank, LOG_FIELD_MAX_CHARS, sanitizeFields, toHclogLevel, type Level } from './hclog-format.js';

/** Field names used across the plugin; one spelling each (podman mixes task/taskID/taskid). */
export interface LogFields {
  task_id?: string;
  alloc_id?: string;
  task_name?: string;
  err?: string;
  path?: string;
  pid?: number;
  duration_ms?: number;
  [key: string]: unknown;
}

export interface Logger {
  trace(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger for a sub-module, or one bound to extra fields (e.g. a task's ids). */
  child(fields: LogFields & { '@module'?: string }): Logger;
}

/** Where lines go; tests pass an array sink, the plugin writes fd 2. */
export type LineSink = (line: string) => void;

/** Environment variable that sets the initial level (`trace` … `error`). */
export const LOG_LEVEL_ENV = 'NOMAD_DRIVER_NIX_LOG_LEVEL';

const EAGAIN_RETRIES = 50;

/** Writes to stderr synchronously; drops the line on any error other than a short EAGAIN. */
export function stderrSink(line: string): void {
  const buffer = Buffer.from(line);
  let offset = 0;
  for (let attempt = 0; offset < buffer.length && attempt < EAGAIN_RETRIES; ) {
    try {
      offset += writeSync(2, buffer, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return; // EPIPE etc.: drop
      attempt += 1;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
}

function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

class LevelControl {
  constructor(public level: Level) {}
}

export interface RootLogger extends Logger {
  setLevel(level: Level): void;
  readonly level: Level;
}

/** Creates the root logger of module `module` (e.g. `nix`). */
export function createLogger(options: { module: string; level?: Level; sink?: LineSink }): RootLogger {
  const sink = options.sink ?? stderrSink;
  const control = new LevelControl(options.level ?? 'info');
  const base = pino(
    {
      level: 'trace', // filtering is done by LevelControl so it applies to every child at once
      base: null,
      messageKey: '@message',
      timestamp: () => `,"@timestamp":"${formatTimestamp(nowMicros())}"`,
      formatters: {
        level: (label) => ({ '@level': toHclogLevel(label) }),
        bindings: (bindings) => sanitizeFields(bindings),
        log: (object) => sanitizeFields(object),
      },
    },
    { write: (line: string) => sink(line) },
  );
  const root = wrap(base, control, { '@module': options.module });
  return Object.assign(root, {
    setLevel(level: Level) {
      control.level = level;
    },
    get level() {
      return control.level;
    },
  });
}

/**
 * Binds `bindings` once; a child merges its fields into them (rather than nesting pino
 * children), so a key such as `@module` appears once per line even when a child overrides it.
 */
function wrap(base: PinoLogger, control: LevelControl, bindings: LogFields): Logger {
  const logger = base.child(bindings);
  const emit = (level: Level) => (message: string, fields?: LogFields) => {
    if (levelRank(level) < levelRank(control.level)) return;
    logger[level](fields ?? {}, truncate(message, LOG_FIELD_MAX_CHARS));
  };
  return {
    trace: emit('trace'),
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => wrap(base, control, { ...bindings, ...fields }),
  };
}

/** The initial level from the environment, or `fallback` when unset or not a level name. */
export function levelFromEnv(env: NodeJS.ProcessEnv, fallback: Level): Level {
  const value = env[LOG_LEVEL_ENV]?.trim().toLowerCase();
  return isLevel(value) ? value : fallback;
}

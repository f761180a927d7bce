/**
 * What go-plugin's host accepts from a plugin's stderr (hashicorp/go-plugin log_entry.go):
 * one JSON object per line with string `@level`, `@message` and `@timestamp`, the timestamp in
 * Go layout 2006-01-02T15:04:05.000000Z07:00 (exactly six fractional digits). Any other key is
 * passed through as a field. A non-string @-key panics the Nomad agent, so the helpers here
 * make sure none is ever written. Pure: no I/O.
 */
import { truncate } from '../errors.js';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

export function isLevel(value: unknown): value is Level {
  return typeof value === 'string' && (LEVELS as readonly string[]).includes(value);
}

/** Numeric rank, lowest is most verbose. */
export function levelRank(level: Level): number {
  return LEVELS.indexOf(level);
}

/** pino's labels to hclog's: hclog has no fatal, and `warning` would not be recognised. */
export function toHclogLevel(pinoLabel: string): Level {
  if (pinoLabel === 'fatal') return 'error';
  return isLevel(pinoLabel) ? pinoLabel : 'info';
}

/**
 * Formats epoch microseconds as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, six fractional digits).
 * Date#toISOString has three digits, which go-plugin fails to parse.
 */
export function formatTimestamp(epochMicros: number): string {
  const micros = Math.floor(epochMicros);
  const millis = Math.floor(micros / 1000);
  const iso = new Date(millis).toISOString(); // 2026-11-22T08:30:00.123Z
  const fraction = String(micros % 1_000_000).padStart(6, '0');
  return `${iso.slice(0, 19)}.${fraction}Z`;
}

/** Keys the logger itself writes; a field of that name is renamed `field.<name>`. */
const RESERVED_KEYS = new Set(['@level', '@message', '@timestamp']);

/**
 * At most this many characters of one field's value (or of the message) reach a log line; at
 * most LOG_MAX_FIELDS fields. A longer string is cut with an ellipsis and its full length; an
 * object or array whose JSON is longer becomes that cut JSON text. So one line stays below
 * ~64 KiB whatever a job puts in its config (go-plugin's host reads plugin stderr by line).
 */
export const LOG_FIELD_MAX_CHARS = 2048;
export const LOG_MAX_FIELDS = 24;

/** `value` bounded for a log line (LOG_FIELD_MAX_CHARS). Pure. */
export function boundLogValue(value: unknown): unknown {
  if (typeof value === 'string') return truncate(value, LOG_FIELD_MAX_CHARS);
  if (value === null || typeof value !== 'object') return value;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    json = String(value);
  }
  return json !== undefined && json.length > LOG_FIELD_MAX_CHARS ? truncate(json, LOG_FIELD_MAX_CHARS) : value;
}

/**
 * Makes a log record safe for go-plugin: fields cannot replace the level, message or
 * timestamp, every other key starting with `@` holds a string, and every value is bounded
 * (boundLogValue; fields beyond LOG_MAX_FIELDS are dropped and counted). Returns a new object.
 */
export function sanitizeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const entries = Object.entries(fields);
  for (const [key, raw] of entries.slice(0, LOG_MAX_FIELDS)) {
    const value = boundLogValue(raw);
    const name = truncate(key, 64);
    if (RESERVED_KEYS.has(key)) {
      out[`field.${key.slice(1)}`] = value;
    } else if (key.startsWith('@') && typeof value !== 'string') {
      out[name] = value === undefined ? '' : (JSON.stringify(value) ?? String(value));
    } else {
      out[name] = value;
    }
  }
  if (entries.length > LOG_MAX_FIELDS) out['fields_dropped'] = entries.length - LOG_MAX_FIELDS;
  return out;
}

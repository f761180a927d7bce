/**
 * What go-plugin's host accepts from a plugin's stderr (hashicorp/go-plugin log_entry.go):
 * one JSON object per line with string `@level`, `@message` and `@timestamp`, the timestamp in
 * Go layout 2006-01-02T15:04:05.000000Z07:00 (exactly six fractional digits). Any other key is
 * passed through as a field. A non-string @-key panics the Nomad agent, so the helpers here
 * make sure none is ever written. Pure: no I/O.
 */

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
 * Makes a log record safe for go-plugin: fields cannot replace the level, message or
 * timestamp, and every other key starting with `@` holds a string. Returns a new object.
 */
export function sanitizeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (RESERVED_KEYS.has(key)) {
      out[`field.${key.slice(1)}`] = value;
    } else if (key.startsWith('@') && typeof value !== 'string') {
      out[key] = value === undefined ? '' : JSON.stringify(value) ?? String(value);
    } else {
      out[key] = value;
    }
  }
  return out;
}

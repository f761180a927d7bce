/**
 * Decodes the msgpack encoding of a cty value, which is how Nomad sends both the plugin
 * config (SetConfig.msgpack_config) and each task's config (TaskConfig.msgpack_driver_config):
 * objects and maps are msgpack maps, lists/sets/tuples arrays, numbers ints, float64 or decimal
 * strings, absent attributes nil. Sizes and nesting are bounded (input-limits.ts) before
 * anything is decoded. Pure: no I/O.
 */
import { Unpackr } from 'msgpackr';
import { errorMessage, failure } from '../errors.js';
import { INPUT_LIMITS, limitFailure, msgpackLimitViolation } from './input-limits.js';

const unpackr = new Unpackr({ mapsAsObjects: true, useRecords: false, int64AsType: 'number' });

/**
 * Returns the decoded value, throwing an `invalid_argument` DriverError for bytes that are not
 * one complete msgpack value or that hold cty "unknown" values (msgpack extensions).
 */
export function decodeCtyMsgpack(bytes: Uint8Array, what: string): unknown {
  if (bytes.length === 0) return null;
  // sizes and nesting first, without decoding: a huge or deep value never reaches the decoder
  const over = msgpackLimitViolation(bytes, what, {
    bytes: INPUT_LIMITS.configBytes,
    depth: INPUT_LIMITS.depth,
    stringChars: INPUT_LIMITS.stringChars,
    listItems: INPUT_LIMITS.listItems,
    mapEntries: INPUT_LIMITS.mapEntries,
  });
  if (over !== undefined) throw limitFailure(`decode ${what}`, over);
  let value: unknown;
  try {
    value = unpackr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (error) {
    throw failure(`decode ${what}`, `invalid msgpack: ${errorMessage(error)}`, {
      code: 'invalid_argument',
      fix: 'use a Nomad client of version 1.8 or newer: it sends the config block as cty msgpack',
    });
  }
  const unknownAt = findUnknown(value, '');
  if (unknownAt !== undefined) {
    throw failure(`decode ${what}`, `value at ${JSON.stringify(unknownAt || '.')} is not known (msgpack extension)`, {
      code: 'invalid_argument',
      fix: 'give the attribute a literal value; the driver cannot use values unknown before run time',
    });
  }
  return value;
}

/** Path of the first value msgpackr could not map to plain data (extension types). */
function findUnknown(value: unknown, path: string): string | undefined {
  if (value === undefined) return path;
  if (value === null || typeof value !== 'object') return undefined;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const found = findUnknown(value[i], `${path}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return path; // e.g. msgpackr's C1Type
  for (const [key, entry] of Object.entries(value)) {
    const found = findUnknown(entry, path === '' ? key : `${path}.${key}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

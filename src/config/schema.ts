/**
 * A tiny schema language for Nomad config blocks: each field declares its HCL type, default,
 * documentation and validation side by side, and the same declaration produces
 *   - the hclspec Nomad uses to decode the block (`toHclSpec`),
 *   - the decoder/validator of the cty-msgpack value Nomad sends back (`decodeBlock`),
 *   - the README's option table (`scripts/render-options.mjs` via `describeFields`).
 * Pure: no I/O.
 */
import { failure, quote, type DriverError } from '../errors.js';
import { hclAttr, hclDefault, hclLiteral, hclObject, toHclExpression, type HclSpec } from './hclspec.js';

export type HclType = 'string' | 'bool' | 'number' | 'list(string)' | 'map(string)';

type ValueOf<T extends HclType> = T extends 'string'
  ? string
  : T extends 'bool'
    ? boolean
    : T extends 'number'
      ? number
      : T extends 'list(string)'
        ? readonly string[]
        : Readonly<Record<string, string>>;

/** A problem with a value: what is wrong, and how to fix it. */
export interface Problem {
  readonly cause: string;
  readonly fix: string;
}

export interface Field<T extends HclType = HclType> {
  readonly type: T;
  /** Value used when the attribute is absent; `undefined` makes the field optional. */
  readonly default?: ValueOf<T>;
  readonly required?: boolean;
  /** One or two sentences for the README. */
  readonly doc: string;
  /** An HCL line for the README, e.g. `runtime = "runc"`. */
  readonly example: string;
  /** Allowed values (strings only); checked before `check`. */
  readonly oneOf?: readonly string[];
  /** Further validation of a well-typed value. */
  check?(value: ValueOf<T>): Problem | undefined;
}

export type Fields = Readonly<Record<string, Field>>;

/** The decoded block: each field's value, undefined only where a field has no default. */
export type Decoded<F extends Fields> = {
  readonly [K in keyof F]: F[K] extends Field<infer T> ? (F[K] extends { readonly default: ValueOf<T> } ? ValueOf<T> : ValueOf<T> | undefined) : never;
};

/** Where the block lives, for error messages. */
export interface BlockContext {
  /** e.g. `plugin config` */
  readonly what: string;
  /** e.g. `the client's plugin "nix" { config { ... } } block` */
  readonly where: string;
}

/** Declares a field; with a `default` its decoded value is never undefined. */
export function field<T extends HclType>(spec: Field<T> & { readonly default: ValueOf<T> }): Field<T> & { readonly default: ValueOf<T> };
export function field<T extends HclType>(spec: Field<T>): Field<T>;
export function field<T extends HclType>(spec: Field<T>): Field<T> {
  return spec;
}

/** The hclspec Object for a set of fields. */
export function toHclSpec(fields: Fields): HclSpec {
  const attributes: Record<string, HclSpec> = {};
  for (const [name, f] of Object.entries(fields)) {
    const attr = hclAttr(name, f.type, f.required === true);
    attributes[name] = f.default === undefined ? attr : hclDefault(attr, hclLiteral(toHclExpression(f.default as never)));
  }
  return hclObject(attributes);
}

/**
 * Decodes a block value (the result of msgpack-decoding Nomad's cty value) against `fields`:
 * type checks, defaults, `oneOf` and `check`. Throws an `invalid_argument` DriverError that
 * names the field, the value and the fix. Keys not in the schema are ignored (Nomad has
 * already rejected unknown attributes against our own spec).
 */
export function decodeBlock<F extends Fields>(fields: F, raw: unknown, context: BlockContext): Decoded<F> {
  const input = raw ?? {};
  if (typeof input !== 'object' || Array.isArray(input) || Buffer.isBuffer(input)) {
    throw failure(`decode ${context.what}`, `expected an object, got ${describeType(input)}`, {
      code: 'invalid_argument',
      fix: `check ${context.where}`,
    });
  }
  const record = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(fields)) {
    const value = record[name];
    if (value === null || value === undefined) {
      if (f.required === true && f.default === undefined) {
        throw invalid(context, name, `is required`, `set ${name} in ${context.where}`);
      }
      out[name] = f.default;
      continue;
    }
    const typed = coerce(f.type, value);
    if (typed.ok === false) {
      throw invalid(
        context,
        name,
        `expected ${f.type}, got ${describeType(value)} ${quote(printable(value))}`,
        `set ${name} to a ${f.type} value in ${context.where}, e.g. ${f.example}`,
      );
    }
    if (f.oneOf !== undefined && !f.oneOf.includes(typed.value as string)) {
      throw invalid(
        context,
        name,
        `${quote(typed.value)} is not one of ${f.oneOf.map((v) => quote(v)).join(', ')}`,
        `set ${name} to one of ${f.oneOf.map((v) => quote(v)).join(', ')} in ${context.where}`,
      );
    }
    const problem = f.check?.(typed.value as never);
    if (problem !== undefined) throw invalid(context, name, problem.cause, problem.fix);
    out[name] = typed.value;
  }
  return out as Decoded<F>;
}

function invalid(context: BlockContext, name: string, cause: string, fix: string): DriverError {
  return failure(`decode ${context.what}`, `field ${quote(name)}: ${cause}`, { code: 'invalid_argument', fix });
}

type Coerced = { ok: true; value: unknown } | { ok: false };

/**
 * Accepts what cty's msgpack encoding produces for each type: numbers arrive as ints, floats
 * or decimal strings (values not exactly representable as float64, e.g. 0.1).
 */
function coerce(type: HclType, value: unknown): Coerced {
  switch (type) {
    case 'string':
      return typeof value === 'string' ? { ok: true, value } : { ok: false };
    case 'bool':
      return typeof value === 'boolean' ? { ok: true, value } : { ok: false };
    case 'number':
      if (typeof value === 'number' && !Number.isNaN(value)) return { ok: true, value };
      if (typeof value === 'bigint') return { ok: true, value: Number(value) };
      if (typeof value === 'string' && /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value.trim())) {
        return { ok: true, value: Number(value) };
      }
      return { ok: false };
    case 'list(string)':
      return Array.isArray(value) && value.every((v) => typeof v === 'string') ? { ok: true, value: [...(value as string[])] } : { ok: false };
    case 'map(string)':
      return isPlainRecord(value) && Object.values(value).every((v) => typeof v === 'string') ? { ok: true, value: { ...value } } : { ok: false };
  }
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'list';
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return 'binary';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'boolean') return 'bool';
  return typeof value;
}

function printable(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  return value;
}

/** Rows for documentation: name, HCL type, default as HCL, doc, example. */
export interface FieldDoc {
  readonly name: string;
  readonly type: HclType;
  readonly default: string;
  readonly doc: string;
  readonly example: string;
}

export function describeFields(fields: Fields): FieldDoc[] {
  return Object.entries(fields).map(([name, f]) => ({
    name,
    type: f.type,
    default: f.default === undefined ? (f.required === true ? '(required)' : '(none)') : toHclExpression(f.default as never),
    doc: f.oneOf === undefined ? f.doc : `${f.doc} One of ${f.oneOf.map((v) => `\`${JSON.stringify(v)}\``).join(', ')}.`,
    example: f.example,
  }));
}

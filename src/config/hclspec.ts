/**
 * Nomad's hclspec, as plain data (the same shape as the hashicorp.nomad.plugins.shared.hclspec
 * Spec message; rpc/ hands it to protobuf unchanged). Nomad turns it into an hcldec spec to
 * decode the `plugin "nix" { config {} }` block and each task's `config {}` block
 * (helper/pluginutils/hclspecutils). Pure: no I/O.
 */

export interface HclAttr {
  readonly name: string;
  readonly type: string;
  readonly required: boolean;
}

export type HclSpec =
  | { readonly block: 'object'; readonly object: { readonly attributes: Readonly<Record<string, HclSpec>> } }
  | { readonly block: 'Attr'; readonly Attr: HclAttr }
  | { readonly block: 'default'; readonly default: { readonly primary: HclSpec; readonly default: HclSpec } }
  | { readonly block: 'literal'; readonly literal: { readonly value: string } };

export function hclObject(attributes: Record<string, HclSpec>): HclSpec {
  return { block: 'object', object: { attributes } };
}

/**
 * An attribute. Inside a Default, hcldec decodes with no implied name, so the attribute
 * carries its own name (hclspecutils dec.go).
 */
export function hclAttr(name: string, type: string, required: boolean): HclSpec {
  return { block: 'Attr', Attr: { name, type, required } };
}

export function hclDefault(primary: HclSpec, fallback: HclSpec): HclSpec {
  return { block: 'default', default: { primary, default: fallback } };
}

/** A literal is an HCL expression: strings keep their quotes, lists are `[...]`. */
export function hclLiteral(value: string): HclSpec {
  return { block: 'literal', literal: { value } };
}

/** Renders a JS value as the HCL expression Nomad evaluates for a Literal. */
export function toHclExpression(value: string | number | boolean | readonly string[] | Readonly<Record<string, string>>): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
  const entries = Object.entries(value as Readonly<Record<string, string>>);
  return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)} = ${JSON.stringify(v)}`).join(', ')} }`;
}

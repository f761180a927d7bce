/**
 * Turns facts about the host into what Nomad's Fingerprint stream carries: node attributes
 * (`driver.nix` and `driver.nix.*`) and a health state with a description that says what is
 * missing and how to fix it. Nomad schedules `driver = "nix"` tasks only on nodes where this is
 * HEALTHY. Pure: no I/O.
 */
import { nixStoreProblems, type NixStoreFacts } from '../nix/store-health.js';
import { PLUGIN_VERSION } from '../version.js';

export type AttributeValue =
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'bool'; readonly value: boolean };

export type Health = 'undetected' | 'unhealthy' | 'healthy';

export interface Fingerprint {
  readonly attributes: Readonly<Record<string, AttributeValue>>;
  readonly health: Health;
  readonly description: string;
}

export interface HostFacts {
  readonly euid: number;
  readonly nix:
    | { readonly found: true; readonly path: string; readonly implementation: string; readonly version: string }
    | { readonly found: false; readonly problem: string };
  readonly runtime:
    | { readonly found: true; readonly name: string; readonly version: string }
    | { readonly found: false; readonly name: string; readonly problem: string };
  readonly cgroups: { readonly version: 'v1' | 'v2' | undefined; readonly problem: string | undefined };
  /**
   * What every realisation needs (nix/store-health.ts): the facts, or why they could not be
   * gathered. Absent when nix itself was not found.
   */
  readonly nixStore?: NixStoreFacts | { readonly problem: string };
}

const str = (value: string): AttributeValue => ({ kind: 'string', value });

export const HEALTHY_DESCRIPTION = 'healthy';

/** Attributes and health for `facts`; every problem found is listed, not just the first. */
export function evaluateFingerprint(facts: HostFacts): Fingerprint {
  const attributes: Record<string, AttributeValue> = {
    'driver.nix': { kind: 'bool', value: true },
    'driver.nix.version': str(PLUGIN_VERSION),
    'driver.nix.runtime': str(facts.runtime.name),
  };
  const problems: string[] = [];
  if (facts.euid !== 0) {
    problems.push(
      `the plugin runs as uid ${facts.euid}, not root, and cannot build task roots, enter cgroups or run tasks as other users; fix: run the Nomad client agent as root`,
    );
  }
  if (facts.nix.found) {
    attributes['driver.nix.nix_version'] = str(facts.nix.version);
    attributes['driver.nix.nix_implementation'] = str(facts.nix.implementation);
  } else {
    problems.push(facts.nix.problem);
  }
  if (facts.nixStore !== undefined) {
    if ('problem' in facts.nixStore) problems.push(facts.nixStore.problem);
    else problems.push(...nixStoreProblems(facts.nixStore));
  }
  if (facts.runtime.found) {
    attributes['driver.nix.runtime_version'] = str(facts.runtime.version);
  } else {
    problems.push(facts.runtime.problem);
  }
  if (facts.cgroups.version !== undefined) attributes['driver.nix.cgroups'] = str(facts.cgroups.version);
  if (facts.cgroups.problem !== undefined) problems.push(`no usable cgroups: ${facts.cgroups.problem}`);
  return {
    attributes,
    health: problems.length === 0 ? 'healthy' : 'unhealthy',
    description: problems.length === 0 ? HEALTHY_DESCRIPTION : problems.join('; and '),
  };
}

/** True when two fingerprints differ in anything Nomad would show. */
export function fingerprintChanged(a: Fingerprint | undefined, b: Fingerprint): boolean {
  if (a === undefined) return true;
  return JSON.stringify(a) !== JSON.stringify(b);
}

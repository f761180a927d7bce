/**
 * The client's evaluation policy for a task's `flake` (plugin options allow_flakes,
 * flake_namespaces, allowed_flakes): whether the task may make this client evaluate and build
 * a flake at all, in its Nomad namespace, from this reference. Checked before anything runs;
 * where a local (`path:`/`git+file:`) flake may live is local-flake.ts's rule, applied after
 * this one. Pure: no I/O.
 */
import type { PluginConfig } from '../config/plugin-config.js';
import { failure, quote, type DriverError } from '../errors.js';

const WHERE = `the client's plugin "nix" { config { ... } } block`;
const SHIP = 'build the closure once, sign it and push it to a binary cache this client trusts, then set store_path (README "Shipping closures")';

/** Characters after which a prefix ends at a boundary of a flake reference. */
const BOUNDARY = /[/:?#]$/;

/**
 * True when `flake` starts with `prefix` at a boundary: the prefix ends in `/`, `:`, `?` or
 * `#`, or the reference ends right after it or continues with one of `/`, `?`, `#`. So
 * `github:my-org` allows `github:my-org/app` and not `github:my-org-evil/app`.
 */
export function flakeMatchesPrefix(flake: string, prefix: string): boolean {
  if (!flake.startsWith(prefix)) return false;
  if (BOUNDARY.test(prefix) || flake.length === prefix.length) return true;
  return /[/?#]/.test(flake.charAt(prefix.length));
}

/**
 * Throws an `invalid_argument` DriverError naming `flake`, the option that refuses it and the
 * fix when the task may not use it; returns otherwise.
 */
export function checkFlakePolicy(flake: string, namespace: string, config: Pick<PluginConfig, 'allow_flakes' | 'allowed_flakes' | 'flake_namespaces'>): void {
  const refuse = (cause: string, fix: string): DriverError =>
    failure('validate task config', `flake ${quote(flake)} ${cause}`, { code: 'invalid_argument', fix });
  if (!config.allow_flakes) {
    throw refuse(
      'is not allowed on this client: its plugin config sets allow_flakes = false (store paths only)',
      `${SHIP}, or set allow_flakes = true in ${WHERE}`,
    );
  }
  if (config.flake_namespaces.length > 0 && !config.flake_namespaces.includes(namespace)) {
    throw refuse(
      `is not allowed in the namespace ${quote(namespace)}: the plugin's flake_namespaces lists ${config.flake_namespaces.map((n) => quote(n)).join(', ')}`,
      `${SHIP}, or run the job in one of those namespaces, or add ${quote(namespace)} to flake_namespaces in ${WHERE}`,
    );
  }
  if (config.allowed_flakes.length > 0 && !config.allowed_flakes.some((prefix) => flakeMatchesPrefix(flake, prefix))) {
    throw refuse(
      `does not start with any of the plugin's allowed_flakes (${config.allowed_flakes.map((p) => quote(p)).join(', ')})`,
      `use a flake below one of those prefixes, or ${SHIP}, or add its prefix to allowed_flakes in ${WHERE}`,
    );
  }
}

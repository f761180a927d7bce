/**
 * What a task may do beyond its uid: the capability set. Pure policy.
 *
 * The rules are those of Nomad's exec driver (capabilities.Calculate in
 * hashicorp/nomad:drivers/shared/capabilities/defaults.go): a root task starts from Nomad's
 * default set as far as the plugin's `allow_caps` allows it, loses its `cap_drop` ("ALL": every
 * one), then gains its `cap_add`; every `cap_add` must be in `allow_caps`. Where we are
 * stricter than exec: an unprivileged task starts from *no* capability (exec hands it the whole
 * default set as ambient capabilities), so it holds exactly its `cap_add`, and only where the
 * runtime can grant ambient capabilities (runc; bubblewrap cannot). no_new_privs stays on in
 * every case, so no setuid or file-capability binary adds to the set.
 */
import {
  ALL_CAPABILITIES,
  DEFAULT_ROOT_CAPABILITIES,
  KNOWN_CAPABILITIES,
  capabilityBit,
  normalizeCapability,
  shortCapabilityName,
} from '../config/capabilities.js';
import { failure, quote } from '../errors.js';

export { DEFAULT_ROOT_CAPABILITIES } from '../config/capabilities.js';

export interface CapabilityRequest {
  /** The task user's uid and name. */
  readonly uid: number;
  readonly userName: string;
  /** The task's `cap_add` / `cap_drop` as written (already checked to be capability names). */
  readonly capAdd: readonly string[];
  readonly capDrop: readonly string[];
  /** The plugin's `allow_caps` as written. */
  readonly allowCaps: readonly string[];
  /** The runtime can give an unprivileged task capabilities (ambient capabilities: runc). */
  readonly ambient: boolean;
  /** The runtime's name, for the message when it cannot. */
  readonly runtimeName: string;
}

const TASK_BLOCK = `the task's config { ... } block`;
const PLUGIN_BLOCK = `the client's plugin "nix" { config { ... } } block`;

function invalid(cause: string, fix: string): Error {
  return failure('validate task config', cause, { code: 'invalid_argument', fix });
}

/** Names → `CAP_` names, "ALL" expanded to every known capability. */
function expand(names: readonly string[]): Set<string> {
  const set = new Set<string>();
  for (const name of names) {
    const normal = normalizeCapability(name);
    if (normal === ALL_CAPABILITIES) {
      for (const c of KNOWN_CAPABILITIES) set.add(c);
    } else if (normal !== undefined) {
      set.add(normal);
    }
  }
  return set;
}

const byBit = (names: Iterable<string>): string[] => [...names].sort((a, b) => capabilityBit(a) - capabilityBit(b));

/**
 * The capabilities (`CAP_` names, in bit order) the task's command keeps. Called by StartTask
 * before anything is created; throws an `invalid_argument` DriverError that names the field,
 * the value and the fix.
 */
export function taskCapabilities(request: CapabilityRequest): string[] {
  const allowed = expand(request.allowCaps);
  const allowedText = request.allowCaps.some((c) => normalizeCapability(c) === ALL_CAPABILITIES)
    ? 'ALL'
    : byBit(allowed).map(shortCapabilityName).join(', ') || 'none';
  const adds: string[] = [];
  for (const name of request.capAdd) {
    const normal = normalizeCapability(name);
    if (normal === undefined || normal === ALL_CAPABILITIES) continue; // the schema refused these
    if (!allowed.has(normal)) {
      const short = shortCapabilityName(normal);
      throw invalid(
        `cap_add ${quote(name)} is not in the plugin's allow_caps (${allowedText})`,
        `remove ${short} from cap_add in ${TASK_BLOCK}, or add ${quote(short)} to allow_caps in ${PLUGIN_BLOCK}`,
      );
    }
    adds.push(normal);
  }

  if (request.uid !== 0) {
    if (adds.length > 0 && !request.ambient) {
      throw invalid(
        `cap_add ${adds.map((c) => quote(shortCapabilityName(c))).join(', ')} cannot be granted to user ${quote(request.userName)} (uid ${request.uid}): ${request.runtimeName} gives capabilities only to root tasks`,
        `use runtime = "runc" in ${PLUGIN_BLOCK} (it grants them as ambient capabilities), run the task as root (user = "root" with allow_root = true), or remove cap_add`,
      );
    }
    return byBit(new Set(adds));
  }

  const result = new Set(DEFAULT_ROOT_CAPABILITIES.filter((c) => allowed.has(c)));
  for (const name of request.capDrop) {
    const normal = normalizeCapability(name);
    if (normal === ALL_CAPABILITIES) result.clear();
    else if (normal !== undefined) result.delete(normal);
  }
  for (const cap of adds) result.add(cap);
  return byBit(result);
}

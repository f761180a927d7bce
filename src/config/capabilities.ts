/**
 * Linux capability names as operators write them in `allow_caps`, `cap_add` and `cap_drop`,
 * and the default set of a root task. Names are accepted the way Nomad's exec and docker
 * drivers accept them (hashicorp/nomad:drivers/shared/capabilities/set.go): any case, with or
 * without the `CAP_` prefix; inside the driver they are always `CAP_` + upper case, the form
 * the kernel headers, bubblewrap's --cap-add and the OCI spec use. Pure: no I/O.
 */

/** Every capability of include/uapi/linux/capability.h up to CAP_CHECKPOINT_RESTORE (40), by bit number. */
export const KNOWN_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** The special name for every capability (allowed in allow_caps and cap_drop). */
export const ALL_CAPABILITIES = 'ALL';

/**
 * What a root task keeps by default: Nomad's default set (NomadDefaults in
 * hashicorp/nomad:drivers/shared/capabilities/defaults.go, Docker's defaults minus NET_RAW).
 * Enough to chown, bind low ports and drop to another user; not enough to load modules, mount,
 * trace other users or change the host's network.
 */
export const DEFAULT_ROOT_CAPABILITIES: readonly string[] = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
];

/**
 * `net_raw`, `NET_RAW`, `cap_net_raw` → `CAP_NET_RAW`; `all` → `ALL`; undefined for a name the
 * kernel does not know (a typo must not silently grant or keep nothing).
 */
export function normalizeCapability(name: string): string | undefined {
  const upper = name.trim().toUpperCase();
  if (upper === ALL_CAPABILITIES) return ALL_CAPABILITIES;
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return KNOWN_CAPABILITIES.includes(full) ? full : undefined;
}

/** `CAP_NET_RAW` → `NET_RAW`, the short form Nomad's docs and our config defaults use. */
export function shortCapabilityName(name: string): string {
  return name.startsWith('CAP_') ? name.slice(4) : name;
}

/** The bit number of a `CAP_` name (its position in the kernel's masks), or -1. */
export function capabilityBit(name: string): number {
  return KNOWN_CAPABILITIES.indexOf(name);
}

/** Why a list of capability names is not acceptable, or undefined; for the config schema's checks. */
export function capabilityListProblem(
  field: string,
  names: readonly string[],
  options: { readonly allowAll: boolean },
): { cause: string; fix: string } | undefined {
  for (const name of names) {
    const normal = normalizeCapability(name);
    if (normal === undefined) {
      return {
        cause: `${JSON.stringify(name)} is not a Linux capability name`,
        fix: `write capability names such as "NET_BIND_SERVICE" or "CAP_NET_BIND_SERVICE" in ${field}${options.allowAll ? ', or "ALL"' : ''}`,
      };
    }
    if (normal === ALL_CAPABILITIES && !options.allowAll) {
      return { cause: `${JSON.stringify(name)} is not allowed in ${field}`, fix: `list each capability the task needs, e.g. ${field} = ["NET_BIND_SERVICE"]` };
    }
  }
  return undefined;
}

/**
 * What a task may do beyond its uid: the capability set. Pure policy.
 *
 * An unprivileged task keeps no capability (and no_new_privs forbids gaining one through
 * setuid binaries). A root task — only with the plugin's allow_root — keeps the same default
 * set as Nomad's exec and docker drivers: enough to chown, bind low ports and drop to another
 * user, not enough to load modules, mount, trace other users or change the host's network.
 */
export const DEFAULT_ROOT_CAPABILITIES: readonly string[] = [
  'CAP_AUDIT_WRITE', 'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_MKNOD',
  'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP', 'CAP_SETGID', 'CAP_SETPCAP', 'CAP_SETUID', 'CAP_SYS_CHROOT',
];

/** The capabilities of a task running as `uid`. */
export function taskCapabilities(uid: number): readonly string[] {
  return uid === 0 ? DEFAULT_ROOT_CAPABILITIES : [];
}

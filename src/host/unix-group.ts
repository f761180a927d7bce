/** Looks up Unix groups: gids (as go-plugin does for PLUGIN_UNIX_SOCKET_GROUP) and members. */
import { readFileSync } from 'node:fs';
import { runCommand } from './exec.js';

export function resolveGroupId(group: string, groupFile = '/etc/group'): number | undefined {
  if (/^\d+$/.test(group)) return Number(group);
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/** The member list of a group(5) line `name:x:gid:a,b,c` named `group`, or undefined. */
export function parseGroupMembers(text: string, group: string): string[] | undefined {
  for (const line of text.split('\n')) {
    const [name, , gid, members] = line.split(':');
    if (name === group && gid !== undefined)
      return (members ?? '')
        .split(',')
        .map((m) => m.trim())
        .filter((m) => m !== '');
  }
  return undefined;
}

/**
 * The members (supplementary, as getgrnam(3) lists them and Nix reads them) of `group`, or
 * undefined when there is no such group: /etc/group first, else `getent group` (LDAP, sssd, …).
 */
export async function groupMembers(group: string, groupFile = '/etc/group'): Promise<string[] | undefined> {
  try {
    const members = parseGroupMembers(readFileSync(groupFile, 'utf8'), group);
    if (members !== undefined) return members;
  } catch {
    // no group file: ask NSS
  }
  try {
    // generous: a timeout reads as "no members", which the health check reports as a fault
    // (NSS may ask a slow directory service; a qemu guest under emulation is slow too)
    const { stdout } = await runCommand('getent', ['group', group], { timeoutMs: 60_000 });
    return parseGroupMembers(stdout, group);
  } catch {
    return undefined; // getent exits 2 for an unknown group
  }
}

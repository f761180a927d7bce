/** Resolves a group name or number to a gid, as go-plugin does for PLUGIN_UNIX_SOCKET_GROUP. */
import { readFileSync } from 'node:fs';

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

/** Looks up host users for task `user` values (name or numeric uid), from /etc/passwd. */
import { readFileSync } from 'node:fs';

export interface HostUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/** Parses passwd(5) text; pure helper kept here next to its only reader. */
export function parsePasswd(text: string): HostUser[] {
  const users: HostUser[] = [];
  for (const line of text.split('\n')) {
    const [name, , uid, gid, , home] = line.split(':');
    if (name === undefined || name === '' || name.startsWith('#') || uid === undefined || gid === undefined) continue;
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    users.push({ name, uid: Number(uid), gid: Number(gid), home: home ?? '/' });
  }
  return users;
}

/** The user named `nameOrUid` (a numeric uid without an entry maps to itself), or undefined. */
export function lookupUser(nameOrUid: string, passwdFile = '/etc/passwd'): HostUser | undefined {
  let users: HostUser[] = [];
  try {
    users = parsePasswd(readFileSync(passwdFile, 'utf8'));
  } catch {
    // no passwd file: only numeric uids resolve
  }
  const byName = users.find((u) => u.name === nameOrUid);
  if (byName !== undefined) return byName;
  if (/^\d+$/.test(nameOrUid)) {
    const uid = Number(nameOrUid);
    return users.find((u) => u.uid === uid) ?? { name: `uid${uid}`, uid, gid: uid, home: '/' };
  }
  return undefined;
}

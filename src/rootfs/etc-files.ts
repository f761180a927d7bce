/**
 * The few /etc files a closure-only root needs so that user, host and DNS lookups work: passwd,
 * group, hosts, resolv.conf and nsswitch.conf. The task never sees the host's /etc; these files
 * are written to a per-task directory and bound read-only (rootfs/plan.ts). Pure: returns text.
 */
import { failure, quote } from '../errors.js';
import { absolutePathProblem } from '../paths.js';
import { isIpAddress, type DnsConfig } from './dns.js';

export interface EtcUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export interface EtcInput {
  /**
   * The user the task runs as (Nomad's task `user`, or the plugin's default), with its home
   * inside the task (rootfs/plan.ts taskHome), which its passwd entry gets.
   */
  readonly user: EtcUser;
  readonly hostname: string;
  readonly dns: DnsConfig;
  /** Extra /etc/hosts entries (Nomad's extra_hosts). */
  readonly extraHosts?: readonly { readonly ip: string; readonly names: readonly string[] }[];
}

export type EtcFileName = 'passwd' | 'group' | 'hosts' | 'resolv.conf' | 'nsswitch.conf';

const WHAT = 'start task';
const GENERATED = '# Written by nomad-driver-nix for this task.';
const NOBODY_ID = 65534;
/** Debian's nologin path; it need not exist in the task root, login shells are never run. */
const NOLOGIN = '/usr/sbin/nologin';
/** Largest id accepted: 2^32 - 2 ((uid_t)-1 means "no id" to the kernel). */
const MAX_ID = 4294967294;

function invalid(cause: string, fix: string): Error {
  return failure(WHAT, cause, { code: 'invalid_argument', fix });
}

/** A word of a line-oriented file: non-empty, no whitespace, and none of `forbidden`. */
function checkWord(field: string, value: string, forbidden: string, fix: string): void {
  if (value.length === 0) throw invalid(`${field} is empty`, fix);
  if (/[\s\0]/.test(value)) throw invalid(`${field} ${quote(value)} contains whitespace or a NUL byte`, fix);
  for (const character of forbidden) {
    if (value.includes(character)) throw invalid(`${field} ${quote(value)} contains ${quote(character)}`, fix);
  }
}

function checkId(field: string, id: number): void {
  if (!Number.isSafeInteger(id) || id < 0 || id > MAX_ID) {
    throw invalid(`${field} ${quote(id)} is not an integer from 0 to ${MAX_ID}`, 'run the task as an existing host user');
  }
}

function validate(input: EtcInput): void {
  const { user } = input;
  checkWord('user.name', user.name, ':/', 'set the task user to a plain user name');
  checkId('user.uid', user.uid);
  checkId('user.gid', user.gid);
  const homeProblem = absolutePathProblem(user.home);
  if (homeProblem !== undefined) throw invalid(`user.home ${quote(user.home)} ${homeProblem}`, 'give the user an absolute home directory');
  if (user.home.includes(':') || /[\n\r]/.test(user.home)) {
    throw invalid(`user.home ${quote(user.home)} contains ":" or a line break`, 'give the user a home directory without ":"');
  }
  checkWord('hostname', input.hostname, '#', 'set a hostname of letters, digits, "-" and "."');
  const dnsFix = "fix the dns block of the job or the host's /etc/resolv.conf";
  for (const [index, server] of input.dns.servers.entries()) {
    if (!isIpAddress(server)) throw invalid(`dns.servers[${index}] ${quote(server)} is not an IP address`, dnsFix);
  }
  for (const [index, search] of input.dns.searches.entries()) checkWord(`dns.searches[${index}]`, search, '#;', dnsFix);
  for (const [index, option] of input.dns.options.entries()) checkWord(`dns.options[${index}]`, option, '#;', dnsFix);
  for (const [index, entry] of (input.extraHosts ?? []).entries()) {
    const fix = 'write extra_hosts entries as "name:IP"';
    if (!isIpAddress(entry.ip)) throw invalid(`extraHosts[${index}].ip ${quote(entry.ip)} is not an IP address`, fix);
    if (entry.names.length === 0) throw invalid(`extraHosts[${index}].names is empty`, fix);
    for (const [n, name] of entry.names.entries()) checkWord(`extraHosts[${index}].names[${n}]`, name, '#', fix);
  }
}

const lines = (rows: readonly string[]): string => rows.map((row) => `${row}\n`).join('');

function renderPasswd(user: EtcUser): string {
  // the task user's entry carries its home in the task (getpwuid() callers such as ssh read it,
  // not $HOME), also when the task user is root or nobody
  const home = (name: string, otherwise: string) => (user.name === name ? user.home : otherwise);
  const rows = [`root:x:0:0:root:${home('root', '/root')}:/bin/sh`, `nobody:x:${NOBODY_ID}:${NOBODY_ID}:nobody:${home('nobody', '/nonexistent')}:${NOLOGIN}`];
  if (user.name !== 'root' && user.name !== 'nobody') {
    rows.push(`${user.name}:x:${user.uid}:${user.gid}:${user.name}:${user.home}:/bin/sh`);
  }
  return lines(rows);
}

function renderGroup(user: EtcUser): string {
  const rows = ['root:x:0:', `nogroup:x:${NOBODY_ID}:`];
  const taken = user.gid === 0 || user.gid === NOBODY_ID || user.name === 'root' || user.name === 'nogroup';
  if (!taken) rows.push(`${user.name}:x:${user.gid}:`);
  return lines(rows);
}

function renderHosts(input: EtcInput): string {
  const local = input.hostname === 'localhost' ? 'localhost' : `localhost ${input.hostname}`;
  return lines([
    GENERATED,
    `127.0.0.1\t${local}`,
    '::1\tlocalhost ip6-localhost ip6-loopback',
    ...(input.extraHosts ?? []).map((entry) => `${entry.ip}\t${entry.names.join(' ')}`),
  ]);
}

function renderResolvConf(dns: DnsConfig): string {
  return lines([
    GENERATED,
    ...dns.servers.map((server) => `nameserver ${server}`),
    ...(dns.searches.length > 0 ? [`search ${dns.searches.join(' ')}`] : []),
    ...(dns.options.length > 0 ? [`options ${dns.options.join(' ')}`] : []),
  ]);
}

/**
 * Renders the task's /etc files, keyed by file name. passwd and group hold root, nobody/nogroup
 * and the task user with a group of its own name (unless its gid or name is one of those), so
 * `id`, `whoami` and getpwuid() work; hosts maps the hostname to loopback; nsswitch.conf limits
 * lookups to these files and DNS (no NSS modules are in a closure-only root). Every value is
 * checked first, because a line break or ":" in a value would add lines to these files; throws
 * an `invalid_argument` DriverError naming the field.
 */
export function renderEtcFiles(input: EtcInput): Readonly<Record<EtcFileName, string>> {
  validate(input);
  return {
    passwd: renderPasswd(input.user),
    group: renderGroup(input.user),
    hosts: renderHosts(input),
    'resolv.conf': renderResolvConf(input.dns),
    'nsswitch.conf': lines([GENERATED, 'passwd: files', 'group: files', 'hosts: files dns']),
  };
}

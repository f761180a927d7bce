/**
 * Chooses the task's resolver configuration (its /etc/resolv.conf) from the job, Nomad and the
 * host, and parses resolv.conf(5) text. Pure: the caller reads the files.
 */

/** What a resolv.conf says: nameserver addresses, search domains and `options` tokens. */
export interface DnsConfig {
  readonly servers: readonly string[];
  readonly searches: readonly string[];
  readonly options: readonly string[];
}

/** The 4 bytes of a dotted-quad IPv4 address, or undefined. */
function parseIpv4(text: string): number[] | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return undefined;
  const bytes = match.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? bytes : undefined;
}

/** The 8 groups of an IPv6 address (an optional `%zone` is ignored), or undefined. */
function parseIpv6(text: string): number[] | undefined {
  const address = text.replace(/%[A-Za-z0-9_.-]+$/, '');
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const pieces = part.split(':');
    for (const [index, piece] of pieces.entries()) {
      if (last && index === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIpv4(piece);
        if (v4 === undefined) return undefined;
        groups.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(piece)) {
        groups.push(parseInt(piece, 16));
      } else {
        return undefined;
      }
    }
    return groups;
  };
  const head = groupsOf(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const missing = 8 - head.length - tail.length;
  return missing >= 1 ? [...head, ...new Array<number>(missing).fill(0), ...tail] : undefined;
}

/** True for an IPv4 or IPv6 literal (IPv6 may carry a `%zone`, as resolv.conf allows). */
export function isIpAddress(text: string): boolean {
  return parseIpv4(text) !== undefined || parseIpv6(text) !== undefined;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses. */
export function isLoopbackAddress(text: string): boolean {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return v4[0] === 127;
  const v6 = parseIpv6(text);
  if (v6 === undefined) return false;
  if (v6.slice(0, 7).every((g) => g === 0) && v6[7] === 1) return true;
  return v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff && (v6[6] ?? 0) >> 8 === 127;
}

/**
 * Parses resolv.conf(5) text as glibc reads it: `#` and `;` start comments, each `nameserver`
 * adds one address (entries that are not IP literals are dropped), the last `search` or
 * `domain` line wins, and `options` tokens accumulate.
 */
export function parseResolvConf(text: string): DnsConfig {
  const servers: string[] = [];
  let searches: string[] = [];
  const options: string[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/[#;].*$/, '').trim();
    const [keyword, ...values] = line.split(/\s+/);
    if (keyword === 'nameserver') {
      const server = values[0];
      if (server !== undefined && isIpAddress(server)) servers.push(server);
    } else if (keyword === 'search') {
      searches = values;
    } else if (keyword === 'domain') {
      searches = values.slice(0, 1);
    } else if (keyword === 'options') {
      options.push(...values);
    }
  }
  return { servers, searches, options };
}

export interface DnsSources {
  /** The job's dns block for this task, if any. */
  readonly task?: DnsConfig;
  /** The dns config Nomad sends in TaskConfig (the group network's dns block), if any. */
  readonly nomad?: DnsConfig;
  /** The host's /etc/resolv.conf text. */
  readonly hostResolvConf: string;
  /** systemd-resolved's upstream list, /run/systemd/resolve/resolv.conf, when it exists. */
  readonly systemdResolvConf?: string;
}

/**
 * The host's resolver as a task sees it. A loopback nameserver (systemd-resolved's stub
 * 127.0.0.53, a local dnsmasq) answers on the host's loopback interface, which a task in its
 * own network namespace cannot reach; when every host nameserver is loopback, systemd-resolved's
 * upstream servers are used instead, as Docker's and Nomad's resolvconf.Path() do.
 */
function hostDns(hostResolvConf: string, systemdResolvConf: string | undefined): DnsConfig {
  const host = parseResolvConf(hostResolvConf);
  if (systemdResolvConf === undefined || host.servers.length === 0 || !host.servers.every(isLoopbackAddress)) return host;
  const upstream = parseResolvConf(systemdResolvConf);
  const reachable = upstream.servers.filter((s) => !isLoopbackAddress(s));
  return reachable.length === 0 ? host : { ...upstream, servers: reachable };
}

/**
 * The resolver configuration for a task. Each of servers, searches and options is taken from
 * the first source that sets it — the job's dns block, then Nomad's, then the host — field by
 * field, as Nomad's own drivers do (nomad:drivers/shared/resolvconf/mount.go,
 * GenerateDNSMount): a job that only sets `searches` keeps the host's nameservers.
 */
export function chooseDns(input: DnsSources): DnsConfig {
  const host = hostDns(input.hostResolvConf, input.systemdResolvConf);
  const pick = (field: keyof DnsConfig): readonly string[] => {
    for (const source of [input.task, input.nomad]) {
      const values = source?.[field];
      if (values !== undefined && values.length > 0) return values;
    }
    return host[field];
  };
  return { servers: pick('servers'), searches: pick('searches'), options: pick('options') };
}

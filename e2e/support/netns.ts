/**
 * Test hosts on this machine: network namespaces joined by veth pairs to a bridge in the root
 * namespace (addresses from 10.231.14.0/24 or another /24 of 10.231.x, ranges only these tests use), each with, when a
 * process runs "on" it, a private Nix store: a mount namespace in which a directory of the
 * test is bind-mounted over /nix, so Nix there starts from an empty store and database and
 * must substitute everything it runs. Traffic only ever goes to the bridge's address and to
 * the namespaces' own addresses.
 *
 *   const net = createBridge('nxc-br-1a2b');          // 10.231.14.1 in the root namespace
 *   const host = addHost(net, 'nxc-c1-1a2b', 11, dir); // 10.231.14.11, /nix = dir/nix
 *   spawn(...host.wrap(['nomad', 'agent', …]))         // runs in its netns and mount namespace
 *   removeNetwork(net)                                 // namespaces, veths, bridge
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/** The /24 the cluster test uses; the cache bench uses 10.231.15, so both may run at once. */
export const SUBNET_PREFIX = '10.231.14';

export interface Bridge {
  readonly name: string;
  /** The first three octets of its /24, e.g. `10.231.14`. */
  readonly prefix: string;
  /** The bridge's address in the root namespace (`10.231.14.1`). */
  readonly address: string;
  readonly hosts: TestHost[];
}

export interface TestHost {
  readonly namespace: string;
  readonly address: string;
  /** The interface inside the namespace (`eth0`). */
  readonly interface: string;
  /** The directory mounted over /nix for processes run with `wrap` (its store, its database). */
  readonly nixDir: string;
  /** `argv` prefixed so it runs in the host's network namespace with its private /nix. */
  wrap(argv: readonly string[]): string[];
}

const ip = (args: readonly string[]): void => {
  execFileSync('ip', [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
};

/** A new bridge `name` holding `<prefix>.1/24` (default 10.231.14.1/24), up. */
export function createBridge(name: string, prefix = SUBNET_PREFIX): Bridge {
  const taken = spawnSync('ip', ['-o', 'addr', 'show', 'to', `${prefix}.0/24`], { encoding: 'utf8' }).stdout.trim();
  if (taken !== '') {
    throw new Error(
      `failed to create bridge ${name}: ${prefix}.0/24 is already on a link of this host (${taken.split(/\s+/)[1]}), left by an earlier run; fix: ip link delete <that link>, and ip netns delete its namespaces (ip netns list)`,
    );
  }
  ip(['link', 'add', name, 'type', 'bridge']);
  ip(['addr', 'add', `${prefix}.1/24`, 'dev', name]);
  ip(['link', 'set', name, 'up']);
  return { name, prefix, address: `${prefix}.1`, hosts: [] };
}

/**
 * A network namespace `namespace` with `eth0` at `<bridge prefix>.<octet>/24` (veth to the bridge)
 * and loopback up, and `<dir>/nix` (mode 0755, with the plugin's usual /nix/var dirs) as its
 * private /nix. Namespace names must differ in their first 11 characters (the root side of the
 * veth is named after them, and link names have at most 15).
 */
export function addHost(bridge: Bridge, namespace: string, octet: number, dir: string): TestHost {
  const address = `${bridge.prefix}.${octet}`;
  const outside = `${namespace.slice(0, 11)}-h`;
  ip(['netns', 'add', namespace]);
  const host: TestHost = {
    namespace,
    address,
    interface: 'eth0',
    nixDir: join(dir, 'nix'),
    wrap: (argv) => [
      'nsenter',
      `--net=/var/run/netns/${namespace}`,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /nix && exec "$@"',
      join(dir, 'nix'),
      ...argv,
    ],
  };
  bridge.hosts.push(host);
  ip(['link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace]);
  ip(['link', 'set', outside, 'master', bridge.name, 'up']);
  ip(['-n', namespace, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  ip(['-n', namespace, 'link', 'set', 'eth0', 'up']);
  ip(['-n', namespace, 'link', 'set', 'lo', 'up']);
  for (const sub of ['store', 'var/nix/gcroots', 'var/nix/db']) mkdirSync(join(dir, 'nix', sub), { recursive: true });
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'nix'), 0o755);
  return host;
}

/** Runs `argv` in the mount namespace of process `pid` (a process started with `wrap`), returning its status and output. */
export function inMountNamespaceOf(pid: number, argv: readonly string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', ...argv], { encoding: 'utf8' });
  return { status: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** Deletes every namespace of the bridge (their veths go with them) and the bridge. */
export function removeNetwork(bridge: Bridge): void {
  for (const host of bridge.hosts) spawnSync('ip', ['netns', 'delete', host.namespace]);
  spawnSync('ip', ['link', 'delete', bridge.name]);
}

/** Whether a network namespace or link of this name still exists. */
export function networkLeftovers(bridge: Bridge): string[] {
  const namespaces = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '');
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  return [
    ...bridge.hosts.filter((h) => namespaces.includes(h.namespace)).map((h) => `netns ${h.namespace}`),
    ...(links.includes(` ${bridge.name}:`) ? [`bridge ${bridge.name}`] : []),
  ];
}

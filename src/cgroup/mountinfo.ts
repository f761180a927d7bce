/**
 * Parses /proc/<pid>/mountinfo (proc(5)) and classifies the cgroup layout the way Nomad's
 * client does (client/lib/cgroupslib/mount.go): the mount at exactly /sys/fs/cgroup decides —
 * `cgroup2` is v2 (unified), `tmpfs` is v1 (legacy or hybrid, whatever sits at
 * /sys/fs/cgroup/unified). Pure: no I/O.
 */

export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  readonly superOptions: readonly string[];
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 …). */
function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const leftFields = left.split(' ');
    const rightFields = right.split(' ');
    const mountPoint = leftFields[4];
    const fsType = rightFields[0];
    if (mountPoint === undefined || fsType === undefined) continue;
    entries.push({
      mountPoint: unescapeOctal(mountPoint),
      fsType,
      superOptions: (rightFields[2] ?? '').split(','),
    });
  }
  return entries;
}

/** Controllers the driver needs to place, limit and measure a task. */
export const REQUIRED_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids'] as const;

const V1_CONTROLLER_NAMES = new Set([
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'pids',
  'freezer',
  'devices',
  'blkio',
  'io',
  'hugetlb',
  'net_cls',
  'net_prio',
  'perf_event',
  'rdma',
  'misc',
]);

export type CgroupLayout =
  | { readonly mode: 'v2'; readonly root: string }
  | { readonly mode: 'v1'; readonly root: string; readonly controllers: readonly string[] }
  | { readonly mode: 'none'; readonly reason: string };

/** Decides the layout from mount entries; `root` is where the hierarchy is mounted. */
export function classifyCgroups(entries: readonly MountEntry[], root = '/sys/fs/cgroup'): CgroupLayout {
  // the last mount at a path is the visible one
  const top = [...entries].reverse().find((e) => e.mountPoint === root);
  if (top === undefined) return { mode: 'none', reason: `nothing is mounted at ${root}` };
  if (top.fsType === 'cgroup2') return { mode: 'v2', root };
  if (top.fsType !== 'tmpfs') return { mode: 'none', reason: `${root} is a ${top.fsType} mount, neither cgroup2 nor a tmpfs of v1 hierarchies` };
  const controllers = new Set<string>();
  for (const e of entries) {
    if (e.fsType !== 'cgroup' || !e.mountPoint.startsWith(`${root}/`)) continue;
    for (const option of e.superOptions) if (V1_CONTROLLER_NAMES.has(option)) controllers.add(option);
  }
  return { mode: 'v1', root, controllers: [...controllers].sort() };
}

/** The required controllers a layout lacks ([] when it has them all). */
export function missingControllers(available: readonly string[]): string[] {
  return REQUIRED_CONTROLLERS.filter((c) => !available.includes(c));
}

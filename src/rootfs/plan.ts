/**
 * The task's root filesystem as data: an ordered list of typed mount operations that a runtime
 * renders (runtime/bwrap/argv.ts) and carries out inside a fresh mount namespace. This list *is*
 * the security model: the task sees exactly these paths and nothing else of the host, so every
 * host path and every in-task target is validated here, once, before anything is rendered.
 * Mirrors bubblewrap's own `SetupOp` list (containers/bubblewrap:bubblewrap.c). Pure: no I/O.
 */
import { failure, quote } from '../errors.js';
import { absolutePathProblem, isWithin, NIX_STORE_DIR } from '../paths.js';

/**
 * One step of building the task root, in the order given. Why each kind is safe:
 * - `ro-bind`: a host path appears read-only; the task can read what we chose to show and write
 *   nothing. Used for the closure's store view and the synthesized /etc.
 * - `bind`: a host path appears read-write. Only Nomad's per-task directories (alloc, local,
 *   secrets) and validated volumes, which Nomad created for this allocation, are bound this way.
 * - `proc`: a new procfs of the task's own pid namespace; it shows only the task's processes.
 * - `dev`: the runtime's minimal /dev (null, zero, full, random, urandom, tty, a devpts, shm);
 *   no host block or character device beyond those.
 * - `tmpfs`: fresh memory-backed storage private to the task; nothing of the host.
 * - `dir`: creates an empty directory inside the task root (itself a private tmpfs).
 * - `symlink`: creates a link inside the task root; the link target resolves in the task's
 *   view, so it cannot reach host paths that are not mounted.
 * - `remount-ro`: makes a mount read-only (non-recursively); it only ever removes a right.
 * - `dev-bind`: one host device node (a character or block device below the host's /dev, as
 *   a Nomad device plugin reserved it for this task) appears below the task's /dev, the only
 *   bind whose device nodes may be opened. It carries the node's type and numbers and the
 *   permissions Nomad granted, so that a runtime with a device cgroup (runc) allows exactly
 *   that node with exactly those rights.
 */
export type MountOp =
  | { readonly kind: 'ro-bind'; readonly source: string; readonly target: string }
  | { readonly kind: 'bind'; readonly source: string; readonly target: string }
  | { readonly kind: 'proc'; readonly target: string }
  | { readonly kind: 'dev'; readonly target: string }
  | { readonly kind: 'tmpfs'; readonly target: string }
  | { readonly kind: 'dir'; readonly target: string }
  | { readonly kind: 'symlink'; readonly linkTarget: string; readonly target: string }
  | { readonly kind: 'remount-ro'; readonly target: string }
  | ({ readonly kind: 'dev-bind'; readonly source: string; readonly target: string } & DeviceNode);

/** A host device node and what the task may do with it (cgroup device access: r, w, m). */
export interface DeviceNode {
  readonly deviceType: 'c' | 'b';
  readonly major: number;
  readonly minor: number;
  /** A non-empty subset of "rwm", in that order: read, write, mknod. */
  readonly permissions: string;
}

/** An ordered plan; the root itself starts as an empty private tmpfs (bwrap's default). */
export interface RootPlan {
  readonly ops: readonly MountOp[];
}

/** A host directory mounted into the task (volume support); validated by planRoot. */
export interface ExtraMount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

/** A host device node bound into the task (device plugins); validated by planRoot. */
export interface DeviceBind extends DeviceNode {
  /** The device node on the host (symlinks resolved), below /dev. */
  readonly source: string;
  /** Where it appears in the task, below /dev. */
  readonly target: string;
}

export interface RootPlanInput {
  /** Host directory holding exactly the task's closure; bound read-only at /nix/store. */
  readonly storeView: string;
  /** Nomad's `<client alloc_dir>/<alloc_id>`: `<allocDir>/alloc` is bound at /alloc. */
  readonly allocDir: string;
  /** `<allocDir>/<taskName>/local` is bound at /local and `…/secrets` at /secrets. */
  readonly taskName: string;
  /** Host directory with the synthesized etc files (rootfs/etc-files.ts); bound read-only at /etc. */
  readonly etcDir: string;
  readonly extraMounts?: readonly ExtraMount[];
  /**
   * Host directories no extra mount may show, overlap or contain (the plugin's state_dir: other
   * tasks' views, /etc files and runtime state). /nix/store and / are always refused.
   */
  readonly protectedHostDirs?: readonly string[];
  readonly devices?: readonly DeviceBind[];
  /**
   * Symlinks at the two FHS paths every Unix program assumes (FHS_LINK_PATHS), each to a
   * program of the task's closure; see fhsLinks in driver/task-request.ts for how they are
   * chosen. A link a volume would cover or contain is left out: the volume wins.
   */
  readonly fhsLinks?: readonly FhsLink[];
}

/**
 * The only paths outside the plan's mounts the root gets: glibc's system() and popen() run
 * `/bin/sh` (_PATH_BSHELL), and scripts start with `#!/usr/bin/env …`. NixOS keeps exactly these
 * two FHS paths for the same reason (its `environment.binsh` and `environment.usrbinenv`).
 */
export const FHS_LINK_PATHS = ['/bin/sh', '/usr/bin/env'] as const;
export type FhsLinkPath = (typeof FHS_LINK_PATHS)[number];

/** A link at an FHS path to a program of the closure (an absolute path below /nix/store). */
export interface FhsLink {
  readonly path: FhsLinkPath;
  readonly linkTarget: string;
}

/** The task's writable directories the plan always mounts: Nomad's task dirs and /tmp. */
export const WRITABLE_TARGETS: readonly string[] = ['/alloc', '/local', '/secrets', '/tmp'];

/** The home directory of every task user whose own home is not a writable directory of the task. */
export const DEFAULT_TASK_HOME = '/local';

/**
 * The task user's home inside the task (its HOME and its /etc/passwd entry): the user's own
 * home (from the host's passwd) when the task's root has it as a writable directory, i.e. it is
 * one of WRITABLE_TARGETS or the target of a read-write extra mount (a volume mounted at the
 * home); otherwise /local, the task's own directory. The host's home directories are never in
 * a closure-only root, and a home that does not exist or is read-only breaks `cd ~`, git and
 * ssh, so it is not kept just because it exists (/, /dev or /bin would).
 */
export function taskHome(hostHome: string, extraMounts: readonly ExtraMount[] = []): string {
  const writable = [...WRITABLE_TARGETS, ...extraMounts.filter((m) => !m.readOnly).map((m) => m.target)];
  return writable.includes(hostHome) ? hostHome : DEFAULT_TASK_HOME;
}

/** Targets the plan itself owns; an extra mount on, above or below one would shadow it. */
export const RESERVED_TARGETS: readonly string[] = [NIX_STORE_DIR, '/alloc', '/local', '/secrets', '/etc', '/proc', '/dev'];

/**
 * Entries of the runtimes' own /dev (bwrap's --dev, runc's defaults and tini at /dev/init) that
 * a device must not replace.
 */
export const RUNTIME_DEV_ENTRIES: readonly string[] = [
  'null',
  'zero',
  'full',
  'random',
  'urandom',
  'tty',
  'console',
  'ptmx',
  'pts',
  'shm',
  'mqueue',
  'fd',
  'stdin',
  'stdout',
  'stderr',
  'core',
  'init',
].map((name) => `/dev/${name}`);

const WHAT = 'start task';

function invalid(cause: string, fix: string): Error {
  return failure(WHAT, cause, { code: 'invalid_argument', fix });
}

function checkHostPath(field: string, path: string): void {
  const problem = absolutePathProblem(path);
  if (problem !== undefined) throw invalid(`${field} ${quote(path)} ${problem}`, `set ${field} to an absolute, normalised host path`);
  // Binding the host root would hand the task the whole machine.
  if (path === '/') throw invalid(`${field} "/" is the host root`, `set ${field} to a dedicated directory, never "/"`);
}

function checkTaskName(name: string): void {
  const problem =
    name.length === 0
      ? 'is empty'
      : name.includes('\0')
        ? 'contains a NUL byte'
        : name.includes('/')
          ? 'contains "/"'
          : name === '.' || name === '..'
            ? 'is a relative path segment'
            : undefined;
  if (problem !== undefined) throw invalid(`taskName ${quote(name)} ${problem}`, 'pass the Nomad task name, a single path segment');
}

function checkExtraTarget(field: string, target: string, earlier: readonly string[]): void {
  const problem = absolutePathProblem(target);
  const fix = 'mount the volume at an absolute, normalised path of its own, e.g. "/srv/data"';
  if (problem !== undefined) throw invalid(`${field} ${quote(target)} ${problem}`, fix);
  if (target === '/') throw invalid(`${field} "/" would replace the task root`, fix);
  for (const reserved of RESERVED_TARGETS) {
    if (isWithin(target, reserved) || isWithin(reserved, target)) {
      throw invalid(`${field} ${quote(target)} would shadow ${reserved}`, fix);
    }
  }
  for (const other of earlier) {
    if (isWithin(target, other) || isWithin(other, target)) {
      throw invalid(`${field} ${quote(target)} overlaps the extra mount at ${quote(other)}`, 'give each volume its own, non-nested target');
    }
  }
}

function checkExtraSource(field: string, source: string, protectedDirs: readonly string[]): void {
  checkHostPath(field, source);
  for (const dir of [NIX_STORE_DIR, ...protectedDirs]) {
    if (isWithin(source, dir) || isWithin(dir, source)) {
      throw invalid(
        `${field} ${quote(source)} ${isWithin(source, dir) ? 'lies inside' : 'contains'} ${dir}, which no task may see`,
        "point the volume at a directory of its own, outside /nix/store and the plugin's state_dir",
      );
    }
  }
}

function checkFhsLinks(links: readonly FhsLink[]): void {
  const seen = new Set<string>();
  for (const [index, link] of links.entries()) {
    const field = `fhsLinks[${index}]`;
    if (!(FHS_LINK_PATHS as readonly string[]).includes(link.path))
      throw invalid(`${field}.path ${quote(link.path)} is not one of ${FHS_LINK_PATHS.join(', ')}`, 'link only the FHS paths the driver provides');
    if (seen.has(link.path)) throw invalid(`${field}.path ${quote(link.path)} is linked twice`, 'link each path once');
    seen.add(link.path);
    const problem = absolutePathProblem(link.linkTarget);
    if (problem !== undefined || !isWithin(link.linkTarget, NIX_STORE_DIR) || link.linkTarget === NIX_STORE_DIR) {
      throw invalid(`${field}.linkTarget ${quote(link.linkTarget)} ${problem ?? `is not below ${NIX_STORE_DIR}`}`, "link to a program of the task's closure");
    }
  }
}

/** The parent directories of `path` below /, outermost first: /usr/bin/env → /usr, /usr/bin. */
function parentDirs(path: string): string[] {
  const segments = path.split('/').slice(1, -1);
  return segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`);
}

function checkDevice(field: string, device: DeviceBind, earlier: readonly string[]): void {
  const fix = "reserve a device node below /dev (a device plugin's device spec: host_path and task_path below /dev)";
  for (const [name, path] of [
    ['source', device.source],
    ['target', device.target],
  ] as const) {
    const problem = absolutePathProblem(path);
    if (problem !== undefined) throw invalid(`${field}.${name} ${quote(path)} ${problem}`, fix);
    if (!isWithin(path, '/dev') || path === '/dev') throw invalid(`${field}.${name} ${quote(path)} is not below /dev`, fix);
  }
  for (const entry of RUNTIME_DEV_ENTRIES) {
    if (isWithin(device.target, entry))
      throw invalid(
        `${field}.target ${quote(device.target)} would replace the runtime's ${entry}`,
        'give the device a task_path of its own below /dev, e.g. "/dev/fuse"',
      );
  }
  for (const other of earlier) {
    if (isWithin(device.target, other) || isWithin(other, device.target)) {
      throw invalid(`${field}.target ${quote(device.target)} overlaps the device at ${quote(other)}`, 'give each device its own task_path');
    }
  }
  if (device.deviceType !== 'c' && device.deviceType !== 'b') {
    throw invalid(`${field}.deviceType ${quote(device.deviceType)} is not "c" or "b"`, 'bind only character or block devices');
  }
  for (const number of ['major', 'minor'] as const) {
    const value = device[number];
    if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff)
      throw invalid(`${field}.${number} ${quote(value)} is not a device number`, 'take the numbers from stat(2) of the host device node');
  }
  if (!/^r?w?m?$/.test(device.permissions) || device.permissions === '') {
    throw invalid(
      `${field}.permissions ${quote(device.permissions)} is not a non-empty subset of "rwm"`,
      'grant some of r (read), w (write) and m (mknod), in that order, e.g. "rw"',
    );
  }
}

/**
 * Plans the root of one task: the closure read-only at /nix/store, Nomad's task directories
 * read-write, the synthesized /etc read-only, private /proc, /dev and /tmp, the validated extra
 * mounts, the FHS links (/bin/sh, /usr/bin/env) into the closure, the devices below /dev, and
 * finally the root tmpfs itself remounted read-only (the binds, /proc, /dev and /tmp are
 * separate mounts and keep their own modes). Called by StartTask after the store view and
 * the etc directory exist; throws an `invalid_argument` DriverError naming the bad field.
 */
export function planRoot(input: RootPlanInput): RootPlan {
  checkHostPath('storeView', input.storeView);
  // The view must hold only the closure; /nix/store itself holds every path on the host, and
  // Nix's GC deletes anything of ours placed inside it (measured with Nix 2.8).
  if (isWithin(input.storeView, NIX_STORE_DIR)) {
    throw invalid(`storeView ${quote(input.storeView)} lies inside ${NIX_STORE_DIR}`, "build the closure view in a directory of the plugin's state dir");
  }
  checkHostPath('allocDir', input.allocDir);
  checkTaskName(input.taskName);
  checkHostPath('etcDir', input.etcDir);
  checkFhsLinks(input.fhsLinks ?? []);

  const taskDir = `${input.allocDir}/${input.taskName}`;
  const ops: MountOp[] = [
    { kind: 'ro-bind', source: input.storeView, target: NIX_STORE_DIR },
    { kind: 'bind', source: `${input.allocDir}/alloc`, target: '/alloc' },
    { kind: 'bind', source: `${taskDir}/local`, target: '/local' },
    { kind: 'bind', source: `${taskDir}/secrets`, target: '/secrets' },
    { kind: 'ro-bind', source: input.etcDir, target: '/etc' },
    { kind: 'proc', target: '/proc' },
    { kind: 'dev', target: '/dev' },
    { kind: 'tmpfs', target: '/tmp' },
  ];

  const extraTargets: string[] = [];
  for (const [index, mount] of (input.extraMounts ?? []).entries()) {
    checkExtraSource(`extraMounts[${index}].source`, mount.source, input.protectedHostDirs ?? []);
    checkExtraTarget(`extraMounts[${index}].target`, mount.target, extraTargets);
    extraTargets.push(mount.target);
    ops.push({ kind: mount.readOnly ? 'ro-bind' : 'bind', source: mount.source, target: mount.target });
  }

  // the FHS links, in the root's own tmpfs (with their parent directories, which runc creates
  // one by one); none that a volume covers, or that would put a volume's mount point on a link
  const dirs = new Set<string>();
  for (const link of input.fhsLinks ?? []) {
    if (extraTargets.some((target) => isWithin(link.path, target) || isWithin(target, link.path))) continue;
    for (const dir of parentDirs(link.path)) {
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      ops.push({ kind: 'dir', target: dir });
    }
    ops.push({ kind: 'symlink', linkTarget: link.linkTarget, target: link.path });
  }

  const deviceTargets: string[] = [];
  for (const [index, device] of (input.devices ?? []).entries()) {
    checkDevice(`devices[${index}]`, device, deviceTargets);
    deviceTargets.push(device.target);
    const { source, target, deviceType, major, minor, permissions } = device;
    ops.push({ kind: 'dev-bind', source, target, deviceType, major, minor, permissions });
  }

  // Last: nothing may be mounted on the root after it turns read-only (mount points could no
  // longer be created), and the task must not create files beside its mounts.
  ops.push({ kind: 'remount-ro', target: '/' });
  return { ops };
}

/**
 * Renders a root plan plus a process spec as an OCI runtime config (config.json) for runc: the
 * second rendering of the same plan (the first is runtime/bwrap/argv.ts). The container's root
 * is an empty directory of the bundle, made read-only after the plan's mounts, so the task sees
 * exactly what the plan binds and nothing else of the host — the same root as under bubblewrap.
 * Pure: no I/O; the runc adapter writes the result and creates `rootfsEntries`.
 *
 * Where the runtimes differ (README "Runtimes"): runc starts as root and switches to the task
 * user without a user namespace, keeps a seccomp deny list (runc/seccomp.ts), and runs a static
 * init (tini) as PID 1 so that the command is not PID 1 of its pid namespace: PID 1 ignores
 * signals it has no handler for, and a `kill_signal` must end a task that never installed one.
 */
import { failure, quote } from '../../errors.js';
import { absolutePathProblem, isWithin } from '../../paths.js';
import type { MountOp, RootPlan } from '../../rootfs/plan.js';
import { TASK_OOM_SCORE_ADJ, validateProcessSpec, type ProcessSpec } from '../process-spec.js';
import type { TaskLimits } from '../../cgroup/limits.js';
import type { OciDeviceRule, OciMount, OciNamespace, OciResources, OciSpec } from './oci-types.js';
import { defaultSeccompProfile } from './seccomp.js';

export const OCI_VERSION = '1.0.2';

/** Where the init binary appears in the task: inside the runtime's /dev, so the root gains no entry. */
export const INIT_TARGET = '/dev/init';

export interface OciOptions {
  /** Host path of a statically linked init (tini-static); it must run without the closure's libc. */
  readonly initPath: string;
  /** The task's cgroup, relative to each hierarchy's root (cgroups v1) or the unified root (v2). */
  readonly cgroupsPath: string;
  /** Nomad's network namespace to join; host networking when absent (as bwrap's --share-net). */
  readonly networkNamespace?: string;
  readonly limits?: TaskLimits;
  /** Node's `process.arch`, for the seccomp architectures. */
  readonly arch: string;
}

/** A directory or symlink the adapter creates inside the bundle's rootfs before `runc run`. */
export type RootfsEntry = { readonly kind: 'dir'; readonly path: string } | { readonly kind: 'symlink'; readonly path: string; readonly linkTarget: string };

export interface OciBundle {
  readonly config: OciSpec;
  readonly rootfsEntries: readonly RootfsEntry[];
}

const WHAT = 'launch task';

function invalid(cause: string, fix: string): Error {
  return failure(WHAT, cause, { code: 'invalid_argument', fix });
}

function checkAbsolute(field: string, path: string, fix: string): void {
  const problem = absolutePathProblem(path);
  if (problem !== undefined) throw invalid(`${field} ${quote(path)} ${problem}`, fix);
}

/**
 * runc's /dev: a small tmpfs with the default devices runc creates, a private devpts, shm and
 * mqueue. `/dev/shm` holds up to the task's memory limit (bytes; no limit: the kernel's tmpfs
 * default, half the RAM), as bubblewrap's /dev/shm does (a directory of its /dev tmpfs): its
 * pages are charged to the task's memory cgroup either way, and runc's usual 64 MiB failed
 * PostgreSQL's parallel queries ("could not resize shared memory segment") on runc only.
 */
function devMounts(target: string, shmBytes: number | undefined): OciMount[] {
  return [
    { destination: target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: `${target}/pts`, type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
    {
      destination: `${target}/shm`,
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', ...(shmBytes === undefined ? [] : [`size=${shmBytes}`])],
    },
    { destination: `${target}/mqueue`, type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
}

/**
 * The plan's ops as OCI mounts, in order. Binds are recursive and nosuid/nodev like bwrap's;
 * `remount-ro` of `/` becomes `root.readonly`, of another target the `ro` option of its mount.
 */
function renderMounts(
  plan: RootPlan,
  shmBytes: number | undefined,
): { mounts: OciMount[]; readonlyRoot: boolean; entries: RootfsEntry[]; devices: OciDeviceRule[] } {
  const mounts: OciMount[] = [];
  const entries: RootfsEntry[] = [];
  const devices: OciDeviceRule[] = [];
  let readonlyRoot = false;
  const insideMount = (path: string) => mounts.some((m) => isWithin(path, m.destination));
  const bind = (op: { source: string; target: string }, mode: 'ro' | 'rw'): OciMount => ({
    destination: op.target,
    type: 'bind',
    source: op.source,
    options: ['rbind', mode, 'nosuid', 'nodev'],
  });
  for (const op of plan.ops as readonly MountOp[]) {
    switch (op.kind) {
      case 'ro-bind':
        mounts.push(bind(op, 'ro'));
        break;
      case 'bind':
        mounts.push(bind(op, 'rw'));
        break;
      case 'proc':
        mounts.push({ destination: op.target, type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] });
        break;
      case 'dev':
        mounts.push(...devMounts(op.target, shmBytes));
        break;
      case 'tmpfs':
        mounts.push({ destination: op.target, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] });
        break;
      case 'dir':
      case 'symlink':
        // created in the bundle's rootfs before start; inside a mount runc would hide them
        if (insideMount(op.target)) {
          throw invalid(`${op.kind} ${quote(op.target)} lies inside a mount of the plan`, `create ${op.target} before the mount that covers it, or outside it`);
        }
        entries.push(op.kind === 'dir' ? { kind: 'dir', path: op.target } : { kind: 'symlink', path: op.target, linkTarget: op.linkTarget });
        break;
      case 'dev-bind':
        // a bind without nodev (runc's /dev tmpfs has none either), and a device cgroup rule
        // that allows this node with exactly the permissions Nomad granted
        mounts.push({ destination: op.target, type: 'bind', source: op.source, options: ['bind', 'nosuid', 'noexec'] });
        devices.push({ allow: true, type: op.deviceType, major: op.major, minor: op.minor, access: op.permissions });
        break;
      case 'remount-ro': {
        if (op.target === '/') {
          readonlyRoot = true;
          break;
        }
        const index = mounts.findLastIndex((m) => m.destination === op.target);
        const mount = mounts[index];
        if (mount === undefined)
          throw invalid(`remount-ro of ${quote(op.target)} follows no mount at that target`, 'remount only a target the plan mounted before');
        mounts[index] = { ...mount, options: [...mount.options.filter((o) => o !== 'rw'), 'ro'] };
        break;
      }
    }
  }
  return { mounts, readonlyRoot, entries, devices };
}

function renderResources(limits: TaskLimits | undefined, devices: readonly OciDeviceRule[]): OciResources {
  const positive = (field: string, value: number | undefined) => {
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0)) {
      throw invalid(`limits.${field} ${quote(value)} is not a positive integer`, `set the task's ${field} to a positive whole number`);
    }
    return value;
  };
  const shares = positive('cpuShares', limits?.cpuShares);
  const limit = positive('memoryLimitBytes', limits?.memoryLimitBytes);
  const reservation = positive('memorySoftLimitBytes', limits?.memorySoftLimitBytes);
  const pids = positive('pidsLimit', limits?.pidsLimit);
  const cpus = limits?.cpusetCpus;
  if (cpus !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(cpus)) {
    throw invalid(`limits.cpusetCpus ${quote(cpus)} is not a CPU list such as "0-1,3"`, "reserve cores with the task's resources { cores = N }");
  }
  const cpu = { ...(shares === undefined ? {} : { shares }), ...(cpus === undefined ? {} : { cpus }) };
  const memory = { ...(limit === undefined ? {} : { limit }), ...(reservation === undefined ? {} : { reservation }) };
  return {
    // no device nodes beyond runc's defaults (null, zero, full, random, urandom, tty, ptmx)
    // and the plan's devices
    devices: [{ allow: false, access: 'rwm' }, ...devices],
    ...(Object.keys(cpu).length > 0 ? { cpu } : {}),
    ...(Object.keys(memory).length > 0 ? { memory } : {}),
    ...(pids === undefined ? {} : { pids: { limit: pids } }),
  };
}

/**
 * The config.json of one task and the rootfs entries to create. Called by the runc adapter at
 * launch; throws an `invalid_argument` DriverError naming the bad field.
 */
export function renderOciConfig(plan: RootPlan, process: ProcessSpec, options: OciOptions): OciBundle {
  validateProcessSpec(WHAT, process);
  checkAbsolute('initPath', options.initPath, 'point the driver at a statically linked tini (Debian: tini-static)');
  checkAbsolute('cgroupsPath', options.cgroupsPath, 'pass an absolute, normalised cgroup path such as /nomad-driver-nix/<task>');
  if (options.cgroupsPath === '/') throw invalid('cgroupsPath "/" is the root cgroup', 'give the task a cgroup of its own');
  if (options.networkNamespace !== undefined) {
    checkAbsolute('networkNamespace', options.networkNamespace, "pass the path of Nomad's network namespace, e.g. /var/run/netns/<alloc id>");
  }
  const { mounts, readonlyRoot, entries, devices } = renderMounts(plan, options.limits?.memoryLimitBytes);
  if (!mounts.some((m) => m.destination === '/dev')) {
    throw invalid('the plan has no /dev mount', 'plan a dev op at /dev: the init binary is bound there');
  }
  mounts.push({ destination: INIT_TARGET, type: 'bind', source: options.initPath, options: ['bind', 'ro', 'nosuid', 'nodev'] });

  const caps = [...process.capabilities];
  const namespaces: OciNamespace[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }];
  if (options.networkNamespace !== undefined) namespaces.push({ type: 'network', path: options.networkNamespace });

  const config: OciSpec = {
    ociVersion: OCI_VERSION,
    root: { path: 'rootfs', readonly: readonlyRoot },
    process: {
      terminal: false,
      user: { uid: process.uid, gid: process.gid },
      // tini: reaps zombies, forwards signals to the command alone (not with -g to its process
      // group: a process manager signals its children itself, as under Nomad's exec and docker
      // drivers; issue 13), exits with the command's status (128+N when a signal N ended it,
      // like bwrap)
      args: [INIT_TARGET, '--', ...process.argv],
      env: Object.keys(process.env)
        .sort()
        .map((name) => `${name}=${process.env[name] ?? ''}`),
      cwd: process.cwd,
      // A root task holds its set directly. An unprivileged one keeps it across runc's execve
      // only as ambient capabilities, which must also be permitted and inheritable
      // (capabilities(7)); no_new_privs does not drop ambient ones, it stops setuid/file caps.
      capabilities:
        process.uid === 0
          ? { bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: [] }
          : { bounding: caps, effective: caps, inheritable: caps, permitted: caps, ambient: caps },
      noNewPrivileges: true,
      // not the -1000 a systemd-run agent (and so this plugin and runc) has: see TASK_OOM_SCORE_ADJ
      oomScoreAdj: TASK_OOM_SCORE_ADJ,
    },
    ...(process.hostname === undefined ? {} : { hostname: process.hostname }),
    mounts,
    linux: {
      namespaces,
      cgroupsPath: options.cgroupsPath,
      resources: renderResources(options.limits, devices),
      // as runc's default spec: kernel internals hidden, tunables read-only
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/proc/scsi',
        '/sys/firmware',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      seccomp: defaultSeccompProfile(options.arch),
    },
  };
  return { config, rootfsEntries: entries };
}

/**
 * Renders a root plan plus a process spec as bubblewrap (0.8) arguments. "The level of
 * protection between the sandboxed processes and the host system is entirely determined by the
 * arguments passed to bubblewrap" (containers/bubblewrap:README.md), so every flag below says
 * why it is there. Pure: no I/O; the runtime adapter spawns bwrap with these arguments.
 */
import { failure, INTERNAL_FIX, quote } from '../../errors.js';
import type { MountOp, RootPlan } from '../../rootfs/plan.js';
import { validateProcessSpec, type ProcessSpec } from '../process-spec.js';

export type { ProcessSpec } from '../process-spec.js';

export interface BwrapOptions {
  /** Descriptor bwrap writes its JSON status to (runtime/bwrap/status.ts); 3 or higher. */
  readonly statusFd: number;
  /**
   * Keep bwrap's network namespace: host networking, or Nomad's network namespace joined from
   * outside (`nsenter --net=… bwrap`). Otherwise the task gets a new one with only loopback.
   */
  readonly shareNet: boolean;
  /**
   * bwrap runs as root because the task user is root. Then no user namespace is created and
   * every capability is dropped explicitly (bwrap would otherwise leave the task the full set).
   * When false, bwrap is started as the task user and creates a user namespace that maps that
   * same host uid: `--uid` under a root-started bwrap would only look unprivileged, since the
   * fake uid maps to host root (bubblewrap's own documentation of --uid; measured with bwrap 0.8).
   */
  readonly asRoot: boolean;
  /**
   * Descriptor bwrap reads one byte from before the sandbox starts the command (`--block-fd`):
   * the adapter first moves the sandbox's init into the task's cgroup, so every process of the
   * task is in it from its first instruction. Omitted: no wait.
   */
  readonly blockFd?: number;
  /**
   * Descriptor bwrap writes the sandbox init's pid to as soon as it cloned it, then closes
   * (`--info-fd`; the same document as the status's first, status.ts): a pipe the adapter reads
   * instead of watching the status file. Omitted: not asked for.
   */
  readonly infoFd?: number;
}

const WHAT = 'launch task';

function invalid(cause: string, fix: string): Error {
  return failure(WHAT, cause, { code: 'invalid_argument', fix });
}

function validate(process: ProcessSpec, options: BwrapOptions): void {
  validateProcessSpec(WHAT, process);
  for (const [name, fd] of [
    ['statusFd', options.statusFd],
    ['blockFd', options.blockFd],
    ['infoFd', options.infoFd],
  ] as const) {
    if (fd !== undefined && (!Number.isSafeInteger(fd) || fd < 3)) {
      throw invalid(`${name} ${quote(fd)} is not a descriptor number of 3 or more`, "pass a descriptor of 3 or more; 0-2 are the task's stdio");
    }
  }
  if (options.blockFd !== undefined && options.blockFd === options.statusFd) {
    throw invalid(`blockFd ${options.blockFd} is also the statusFd`, 'use two different descriptors');
  }
  if (options.infoFd !== undefined && (options.infoFd === options.statusFd || options.infoFd === options.blockFd)) {
    throw invalid(`infoFd ${options.infoFd} is also the statusFd or the blockFd`, 'use three different descriptors');
  }
  // asRoot must agree with the user the adapter starts bwrap as; a mismatch would either run a
  // non-root task as root or hand a "root" task a user namespace it did not ask for.
  if (options.asRoot !== (process.uid === 0)) {
    throw invalid(`asRoot ${options.asRoot} does not match uid ${process.uid}`, 'set asRoot exactly when the task user is root (uid 0)');
  }
  // bwrap started as an unprivileged user can only add capabilities inside its own user
  // namespace, where they mean nothing to the host's network or files: refuse instead of
  // pretending (the driver says so earlier, in its own words: driver/privileges.ts).
  if (!options.asRoot && process.capabilities.length > 0) {
    throw invalid(
      `capabilities ${process.capabilities.join(', ')} were requested for uid ${process.uid}`,
      'run the task as root (allow_root) to grant capabilities under bubblewrap, use runc, or remove them',
    );
  }
}

/**
 * One op as bwrap flags. Why each is safe is documented on MountOp (rootfs/plan.ts); bwrap adds
 * nosuid and nodev to every bind, and binds recursively, so host submounts stay as they are.
 */
function renderOp(op: MountOp): string[] {
  switch (op.kind) {
    case 'ro-bind':
      return ['--ro-bind', op.source, op.target];
    case 'bind':
      return ['--bind', op.source, op.target];
    case 'proc':
      return ['--proc', op.target];
    case 'dev':
      return ['--dev', op.target];
    case 'tmpfs':
      return ['--tmpfs', op.target];
    case 'dir':
      return ['--dir', op.target];
    case 'symlink':
      return ['--symlink', op.linkTarget, op.target];
    case 'remount-ro':
      return ['--remount-ro', op.target];
    case 'dev-bind':
      // the one bind without nodev. bwrap has no device cgroup: the node's own mode and
      // owner decide what the task can do with it (op.permissions is not enforced here).
      return ['--dev-bind', op.source, op.target];
  }
}

/**
 * The full bwrap argument list (without the `bwrap` program name) for one task: namespaces,
 * session, environment, status fd, the plan's mounts in order, then `--` and the command.
 * Called by the bwrap runtime adapter at launch; throws an `invalid_argument` DriverError.
 *
 * Deliberately absent: `--die-with-parent` (tasks must outlive a restarted plugin, which
 * recovers them), `--uid`/`--gid` (see BwrapOptions.asRoot) and `--unshare-all` (spelled out so
 * the argv shows every namespace).
 */
export function renderBwrapArgs(plan: RootPlan, process: ProcessSpec, options: BwrapOptions): string[] {
  validate(process, options);
  const args: string[] = [];
  // Namespaces, as --unshare-all would create them, plus user and net as decided above.
  if (!options.asRoot) args.push('--unshare-user');
  args.push('--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup-try');
  args.push(options.shareNet ? '--share-net' : '--unshare-net');
  // Only a root-started bwrap keeps capabilities for the task: drop them all, then add back
  // exactly the task's set (the driver's default for root tasks).
  if (options.asRoot) {
    args.push('--cap-drop', 'ALL');
    for (const cap of process.capabilities) args.push('--cap-add', cap);
  }
  // setsid(): without a controlling terminal the task cannot push input into one (TIOCSTI).
  args.push('--new-session');
  // bwrap passes its own environment through; --setenv only adds (measured with bwrap 0.8).
  args.push('--clearenv');
  for (const name of Object.keys(process.env).sort()) args.push('--setenv', name, process.env[name] ?? '');
  args.push('--chdir', process.cwd);
  if (process.hostname !== undefined) args.push('--hostname', process.hostname);
  args.push('--json-status-fd', String(options.statusFd));
  if (options.blockFd !== undefined) args.push('--block-fd', String(options.blockFd));
  if (options.infoFd !== undefined) args.push('--info-fd', String(options.infoFd));
  for (const op of plan.ops) args.push(...renderOp(op));
  args.push('--', ...process.argv);
  return args;
}

/**
 * renderBwrapArgs' result split for `--args FD`: every option (the task's environment, the
 * host paths of its mounts, the status fds) becomes NUL-terminated data bwrap reads from
 * `argsFd`, and bwrap's own argv is only `--args FD -- command…`. bwrap's argv is what the
 * sandbox's init shows as /proc/1/cmdline inside the task, and every host user in `ps`: the
 * host paths of the state dir and the task dirs stay out of the task's sight, the task's
 * environment out of the host's process list. bwrap reads the data before it sets up
 * anything and closes the descriptor, so the task never holds it.
 */
export function splitArgsForFd(args: readonly string[], command: readonly string[], argsFd: number): { argv: string[]; data: Buffer } {
  const optionCount = args.length - command.length - 1;
  if (optionCount < 0 || args[optionCount] !== '--' || command.some((arg, i) => args[optionCount + 1 + i] !== arg)) {
    throw failure(WHAT, 'the arguments do not end with `--` and the command', { code: 'internal', fix: INTERNAL_FIX });
  }
  if (!Number.isSafeInteger(argsFd) || argsFd < 3)
    throw invalid(`argsFd ${quote(argsFd)} is not a descriptor number of 3 or more`, "pass a descriptor of 3 or more; 0-2 are the task's stdio");
  const options = args.slice(0, optionCount);
  const withNul = options.find((option) => option.includes('\0'));
  if (withNul !== undefined) throw invalid(`bwrap argument ${quote(withNul)} contains a NUL byte`, 'remove the NUL byte');
  return { argv: ['--args', String(argsFd), ...args.slice(optionCount)], data: Buffer.from(options.map((option) => `${option}\0`).join(''), 'utf8') };
}

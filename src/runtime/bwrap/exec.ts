/**
 * A command exec'd into a running bubblewrap task, rendered as host commands. Pure: no I/O;
 * the bwrap adapter finds the tools and host/exec-in-task.ts runs the result.
 *
 * bubblewrap cannot start a process in a sandbox it already built, so the task is joined from
 * outside with util-linux, the way `docker exec` joins a container:
 * - a host shell writes its pid to the task cgroup's cgroup.procs first, so the command and
 *   everything it forks count against the task's limits, raises its oom_score_adj to the
 *   task's (the plugin's is -1000 under HashiCorp's unit; Nomad issue 6672), opens the static helper
 *   (native/nix-exec.c) as fd 3 and the spec file (helperSpec: cwd, environment, command;
 *   written by the adapter, mode 0600) as fd 4, and removes that file;
 * - `setpriv --no-new-privs`, as bwrap sets it for the task;
 * - `nsenter` enters the task's user, mount, pid, ipc, uts, net and cgroup namespaces, chroots
 *   to the task's root, changes to that root (never to a path the task can change: it would
 *   be resolved on the host) and becomes the task user. Entering the user namespace bwrap
 *   made for the task (which maps only the task's uid) and becoming that uid leaves the
 *   command no capability: the kernel clears them at its execve;
 * - nsenter execs the helper as /proc/self/fd/3 (the task's /proc: the open host file, which
 *   is no file of the task's root). The helper reads the spec from fd 4, closes every fd
 *   above 2, changes to the task's cwd inside the task's root, sets exactly the task's
 *   environment and execs the command.
 *
 * Every host process of that chain (sh, setpriv, nsenter, and unshare/script for a terminal)
 * runs as root with the fixed environment of HostCommand.env: the task's variables travel in
 * the spec and become an environment only inside the task, after the last privileged step. A
 * task variable such as LD_PRELOAD therefore never reaches a root process, and no task
 * variable or argument is in a host command line (which every host user can read).
 *
 * A terminal has to come from the task's own devpts instance (bwrap mounts a new one at
 * /dev/pts): ttyname() inside the task looks the terminal up under /dev/pts, so one from the
 * host's /dev/pts makes `tty` say "not a tty". The plugin cannot open the task's /dev/ptmx
 * itself (it would need ioctls Node lacks, or to be in the task's mount namespace), so a
 * terminal exec runs util-linux `script` in a private mount namespace whose /dev/ptmx and
 * /dev/pts lead into the task's /dev: script allocates the terminal there, runs the command
 * on it and relays it to its own terminal (the plugin's node-pty one), passing window-size
 * changes on. The command's exit status comes back through nsenter and `script --return`.
 */
import { INTERNAL_FIX, failure } from '../../errors.js';
import { HOST_PATH, TASK_OOM_SCORE_ADJ, validateProcessSpec } from '../process-spec.js';
import type { ExecSpec, HostCommand } from '../runtime.js';

/** Absolute host paths of the programs a bwrap exec needs (util-linux, a POSIX sh, the helper). */
export interface BwrapExecTools {
  readonly sh: string;
  /** The statically linked native/nix-exec, run inside the task. */
  readonly helper: string;
  readonly setpriv: string;
  readonly nsenter: string;
  /** Only for terminals. */
  readonly unshare: string;
  /** Only for terminals. */
  readonly script: string;
}

const WHAT = 'exec in task';

/** The descriptor the helper is opened as, and the path nsenter execs it by inside the task. */
export const HELPER_FD = 3;
export const HELPER_IN_TASK = `/proc/self/fd/${HELPER_FD}`;
/** The descriptor the helper reads its spec from. */
export const SPEC_FD = 4;

/**
 * `sh -c JOIN_CGROUP nix-exec <oom_score_adj floor> <helper> <spec file> <n> <procs file>…
 * <command…>`: joins the cgroup by writing its own pid to each file, raises its oom_score_adj
 * to the floor when below it, opens the helper as fd 3 and the spec as fd 4,
 * removes the spec file (the fd keeps it), then becomes the command (same pid, so it stays
 * in the cgroup).
 */
export const JOIN_CGROUP_SCRIPT = [
  'floor=$1; helper=$2; spec=$3; n=$4; shift 4',
  'while [ "$n" -gt 0 ]; do',
  '  echo $$ > "$1" || { echo "failed to exec in task: cannot join the task cgroup through $1" >&2; exit 125; }',
  '  shift; n=$((n - 1))',
  'done',
  // the command's oom_score_adj raised to the floor (TASK_OOM_SCORE_ADJ) from the plugin's,
  // which is -1000 under HashiCorp's nomad.service; never lowered (raising needs no privilege)
  '{ read adj < /proc/self/oom_score_adj && [ "$adj" -ge "$floor" ]; } || echo "$floor" > /proc/self/oom_score_adj || { echo "failed to exec in task: cannot set its oom_score_adj to $floor" >&2; exit 125; }',
  // `command`: a failed redirection of a special builtin would end the shell with 2
  `command exec ${HELPER_FD}< "$helper" ${SPEC_FD}< "$spec" || { echo "failed to exec in task: cannot open $helper or $spec" >&2; exit 125; }`,
  'rm -f "$spec"',
  'exec "$@"',
].join('\n');

/**
 * `unshare --mount -- sh -c TERMINAL nix-exec-tty <init pid> <script> <command line>`: in a
 * private mount namespace (gone with its last process; the host's /dev is untouched), a
 * tmpfs /dev whose ptmx and pts are the task's, then `script` runs the command line on a
 * terminal it opens there.
 */
export const TERMINAL_SCRIPT = [
  'set -e',
  'pid=$1; script=$2; command=$3',
  'taskdev="/proc/$pid/root"/dev',
  'mount -t tmpfs -o mode=0755,size=64k nix-exec /dev',
  'ln -s "$taskdev/pts" /dev/pts',
  'ln -s pts/ptmx /dev/ptmx',
  'ln -s "$taskdev/null" /dev/null',
  'exec "$script" --quiet --return --command "$command" /dev/null',
].join('\n');

/** `value` as one word of a POSIX shell command line. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The nsenter arguments that put a process into the task of init `initPid` as `spec` says. */
export function nsenterArgs(initPid: number, spec: ExecSpec): string[] {
  return [
    '--target',
    String(initPid),
    '--user',
    '--mount',
    '--uts',
    '--ipc',
    '--net',
    '--pid',
    '--cgroup',
    // the task's root, and as the directory the root itself: nsenter opens --wd on the host,
    // so a path the task can change (work_dir, a symlink in it) must never be there; the
    // helper changes to spec.cwd inside the task
    '--root',
    `--wd=/proc/${initPid}/root`,
    '--setuid',
    String(spec.uid),
    '--setgid',
    String(spec.gid),
  ];
}

/**
 * A new terminal starts with the settings of script's own, which the plugin has made raw
 * (host/exec-in-task.ts): the command's terminal gets the usual ones (echo, line editing,
 * signals, CR-LF output) back before the command starts.
 */
export const SANE_TERMINAL = 'stty sane || exit 125';

/**
 * The helper's spec (native/nix-exec.c), the content of the spec file: `<cwd> <n>
 * NAME=VALUE… <argv…>`, each NUL-terminated. The task's environment is data here; it becomes
 * the command's environment only inside the task. Validated specs hold no NUL (process-spec.ts).
 */
export function helperSpec(spec: ExecSpec): string {
  const env = Object.keys(spec.env)
    .sort()
    .map((name) => `${name}=${spec.env[name] ?? ''}`);
  return [spec.cwd, String(env.length), ...env, ...spec.argv].map((field) => `${field}\0`).join('');
}

/** The whole command run on the host, terminal or not: cgroup, helper and spec fds, no_new_privs, namespaces, helper. */
export function innerArgv(initPid: number, spec: ExecSpec, tools: BwrapExecTools, specFile: string): string[] {
  const join = spec.tty ? `${SANE_TERMINAL}\n${JOIN_CGROUP_SCRIPT}` : JOIN_CGROUP_SCRIPT;
  return [
    tools.sh,
    '-c',
    join,
    'nix-exec',
    String(TASK_OOM_SCORE_ADJ),
    tools.helper,
    specFile,
    String(spec.cgroupProcsFiles.length),
    ...spec.cgroupProcsFiles,
    tools.setpriv,
    '--no-new-privs',
    tools.nsenter,
    ...nsenterArgs(initPid, spec),
    '--',
    HELPER_IN_TASK,
    String(SPEC_FD),
  ];
}

/**
 * The host command that runs `spec` in the bubblewrap task whose sandbox init is `initPid`.
 * Throws a DriverError for a spec that fails validation, and for root: a root bwrap task
 * has no user namespace and keeps its capability set through bwrap's --cap-drop/--cap-add,
 * which nothing on the host can apply to a process joining it from outside; it would keep
 * every capability.
 */
export function renderBwrapExec(initPid: number, spec: ExecSpec, tools: BwrapExecTools, specFile: string): HostCommand {
  validateProcessSpec(WHAT, spec);
  if (!Number.isSafeInteger(initPid) || initPid <= 0) {
    throw failure(WHAT, `the sandbox init pid ${String(initPid)} is not a positive whole number`, { code: 'internal', fix: INTERNAL_FIX });
  }
  if (spec.uid === 0) {
    throw failure(
      WHAT,
      "the task runs as root under bubblewrap, and a command joining it from outside would keep every capability (bubblewrap limits a root task's capabilities only for the processes it starts itself)",
      {
        code: 'failed_precondition',
        fix: 'run root tasks you exec into with runtime = "runc", which applies the task\'s capabilities and seccomp filter to exec\'d commands too, or run the task as an unprivileged user',
      },
    );
  }
  const inner = innerArgv(initPid, spec, tools, specFile);
  if (!spec.tty) {
    const [file, ...args] = inner as [string, ...string[]];
    return { file, args, env: { PATH: HOST_PATH } };
  }
  return {
    file: tools.unshare,
    args: [
      '--mount',
      '--propagation',
      'private',
      '--',
      tools.sh,
      '-c',
      TERMINAL_SCRIPT,
      'nix-exec-tty',
      String(initPid),
      tools.script,
      inner.map(shellQuote).join(' '),
    ],
    // script runs the command line with $SHELL -c
    env: { PATH: HOST_PATH, SHELL: tools.sh },
  };
}

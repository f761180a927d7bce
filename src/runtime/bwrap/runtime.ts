/**
 * Runs tasks with bubblewrap. bwrap is started detached (own session) and as the task user
 * (so the task is that host uid, not a faked one; root only when the task user is root), with
 * stdout/stderr opened straight on Nomad's log FIFOs — the plugin is not in the log path and
 * the task never holds the plugin's own stdio — and `--json-status-fd` on a per-task file, so
 * the sandbox's pid and the exit code are on disk even when the plugin is not running.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { failure } from '../../errors.js';
import { removeFile, writeTextFile } from '../../host/fs.js';
import { childPids, processGroupOf, processStartTime, signalProcess } from '../../host/proc.js';
import { sameProcess, waitForValue, watchDetachedExit } from '../detached-exit.js';
import { signalThenKill } from '../stop.js';
import { createFile, openAll, openForWriting, readFile } from '../../host/task-files.js';
import { findExecutable } from '../../host/which.js';
import type { ExecSpec, ExitStatus, HostCommand, LaunchRequest, LaunchedTask, RecoveryRecord, Runtime } from '../runtime.js';
import { renderBwrapArgs, splitArgsForFd } from './argv.js';
import { HOST_PATH } from '../process-spec.js';
import { helperSpec, renderBwrapExec, type BwrapExecTools } from './exec.js';
import { findExecHelper } from './helper.js';
import { parseBwrapStatus } from './status.js';

const STATUS_FILE = 'bwrap-status.json';
const STATUS_FD = 3;
const BLOCK_FD = 4;
const ARGS_FD = 5;

export class BwrapRuntime implements Runtime {
  readonly name = 'bwrap';
  readonly mountsAsTaskUser = true;
  readonly ambientCapabilities = false;
  readonly recover = recoverBwrapTask;

  /** bwrap keeps nothing outside the task's state dir. */
  async forget(_key: string): Promise<void> {}

  /**
   * `nsenterPath` (util-linux) joins Nomad's network namespace: bwrap as an unprivileged user
   * cannot setns into a namespace owned by root, so nsenter (started as root) enters it, drops
   * to the task user (clearing supplementary groups) and execs bwrap, which keeps it
   * (--share-net). The pid stays the same: nsenter execs, it does not fork.
   */
  constructor(
    private readonly bwrapPath: string,
    private readonly nsenterPath: string | undefined,
  ) {}

  async launch(request: LaunchRequest): Promise<LaunchedTask> {
    const statusPath = join(request.stateDir, STATUS_FILE);
    const asRoot = request.process.uid === 0;
    const cgroup = request.cgroup;
    const { argv: bwrapArgv, data: argsData } = splitArgsForFd(
      renderBwrapArgs(request.plan, request.process, { statusFd: STATUS_FD, shareNet: true, asRoot, blockFd: BLOCK_FD }),
      request.process.argv,
      ARGS_FD,
    );
    const { uid, gid } = request.process;
    let program = this.bwrapPath;
    let argv = bwrapArgv;
    if (request.networkNamespace !== undefined) {
      if (this.nsenterPath === undefined) {
        throw failure('launch task', `nsenter is not on the agent's PATH, and the group's network namespace ${request.networkNamespace} must be joined with it`, {
          code: 'failed_precondition',
          fix: 'install util-linux on the client',
        });
      }
      program = this.nsenterPath;
      // nsenter runs as root: its environment is the fixed empty one below, the task's
      // variables are bwrap's --setenv data (on ARGS_FD), which nsenter never interprets
      argv = [`--net=${request.networkNamespace}`, ...(asRoot ? [] : ['--setuid', String(uid), '--setgid', String(gid)]), '--', this.bwrapPath, ...bwrapArgv];
    }
    // all or none: a failed open closes the others (openAll)
    const [stdout, stderr, status] = (await openAll([
      () => openForWriting(request.stdoutPath),
      () => openForWriting(request.stderrPath),
      () => createFile(statusPath),
    ])) as [FileHandle, FileHandle, FileHandle];
    const asUser = asRoot || program !== this.bwrapPath ? {} : { uid, gid };
    let child;
    try {
      child = spawn(program, argv, {
        detached: true, // own session and process group: survives the plugin, gets no terminal signals
        // fd 4: a pipe bwrap waits on before the command starts (cgroup placement, below);
        // fd 5: a pipe bwrap reads its options from (splitArgsForFd)
        stdio: ['ignore', stdout.fd, stderr.fd, status.fd, 'pipe', 'pipe'],
        env: {}, // bwrap's own environment; the task gets only --setenv values
        ...asUser,
      });
    } finally {
      await Promise.all([stdout.close(), stderr.close(), status.close()]);
    }
    const pipes = child.stdio as readonly unknown[];
    const block = pipes[BLOCK_FD] as Writable | null;
    const argsPipe = pipes[ARGS_FD] as Writable | null;
    // bwrap may exit before reading the block or args fd: an EPIPE there is not the plugin's crash
    block?.on('error', () => undefined);
    argsPipe?.on('error', () => undefined);
    /** Closes the plugin's ends of both pipes now (a failed start), not when they are collected. */
    const closePipes = () => {
      block?.destroy();
      argsPipe?.destroy();
    };
    const pid = child.pid;
    if (pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      closePipes();
      throw failure('launch task', `cannot run ${program}: ${error.message}`, { code: 'failed_precondition', fix: 'install bubblewrap or set runtime = "runc"' });
    }
    child.unref();
    argsPipe?.end(argsData);
    const exitedRaw = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const exited = exitedRaw.then(async ({ code, signal }) => exitStatusOf(await readStatus(statusPath), code, signal));

    // bwrap reports the sandbox init's pid once the sandbox is set up; a setup error exits first
    const initPid = await waitForValue(statusPath, async () => (await readStatus(statusPath)).childPid, exitedRaw);
    if (initPid === undefined) {
      const { code } = await exitedRaw;
      closePipes();
      throw failure('launch task', `bwrap exited with code ${code} before starting the command`, {
        code: 'failed_precondition',
        fix: 'see `nomad alloc logs -stderr` for bubblewrap\'s message',
      });
    }
    const task = new BwrapTask(pid, processStartTime(pid) ?? 0, initPid, processStartTime(initPid) ?? 0, new Date(), exited, request.stateDir);
    // the sandbox's init waits on the block fd: put it in the cgroup, then let it start the
    // command, which inherits the cgroup (the bwrap monitor itself stays outside)
    try {
      await cgroup.join(initPid);
    } catch (error) {
      closePipes();
      await task.kill();
      throw error;
    }
    block?.end('1');
    await commandStarted(initPid, exitedRaw);
    return task;
  }
}

/** The longest launch waits for the sandbox's init to exec the command (commandStarted). */
const COMMAND_START_WAIT_MS = 5_000;

/**
 * Resolves once the sandbox's init has a child that exec'd the command (its command line is no
 * longer bwrap's), or bwrap exited, or after COMMAND_START_WAIT_MS. bwrap builds the root and
 * forks the command only after the block fd released it, so without this wait an exec right
 * after StartTask could find a half-built root or a child still holding bwrap's empty
 * environment instead of the task's.
 */
async function commandStarted(initPid: number, exited: Promise<unknown>): Promise<void> {
  const cmdline = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return undefined;
    }
  };
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + COMMAND_START_WAIT_MS;
  while (!done && Date.now() < deadline) {
    const init = cmdline(initPid);
    if (init === undefined) return;
    const started = childPids(initPid).some((pid) => {
      const own = cmdline(pid);
      return own !== undefined && own !== init;
    });
    if (started) return;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A task launched by an earlier plugin process: bwrap's status file holds its exit code. */
export async function recoverBwrapTask(record: RecoveryRecord): Promise<LaunchedTask> {
  const statusPath = join(record.stateDir, STATUS_FILE);
  const recorded = async () => (await readStatus(statusPath)).exitCode;
  if (!sameProcess(record.pid, record.pidStartTime) && (await recorded()) === undefined) {
    throw failure('recover task', `its bubblewrap process ${record.pid} is gone and recorded no exit status in ${statusPath}`, {
      code: 'not_found',
      fix: 'none needed: Nomad starts the task again',
    });
  }
  const exited = watchDetachedExit(record.pid, record.pidStartTime, recorded).then((code) => exitStatusOf({ ...(code === undefined ? {} : { exitCode: code }) }, code === undefined ? 137 : null, null));
  return new BwrapTask(record.pid, record.pidStartTime, record.initPid, record.initStartTime, record.startedAt, exited, record.stateDir);
}

async function readStatus(path: string) {
  try {
    return parseBwrapStatus(await readFile(path, 'utf8'));
  } catch {
    return {};
  }
}


/**
 * bwrap's init exits with the command's status, 128+N when the command died of signal N, and
 * bwrap reports that number as `exit-code`.
 */
export function exitStatusOf(status: { exitCode?: number }, code: number | null, signal: NodeJS.Signals | null): ExitStatus {
  const exitCode = status.exitCode ?? code ?? 128 + signalNumber(signal);
  return { exitCode, signal: exitCode > 128 && exitCode < 128 + 65 ? exitCode - 128 : 0, oomKilled: false };
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 0;
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return table[signal] ?? 0;
}

class BwrapTask implements LaunchedTask {
  constructor(
    readonly pid: number,
    readonly pidStartTime: number,
    readonly initPid: number,
    readonly initStartTime: number,
    readonly startedAt: Date,
    readonly exited: Promise<ExitStatus>,
    /** The task's state dir (root-only): exec spec files go there. */
    private readonly stateDir: string,
  ) {}

  /**
   * With --new-session the sandbox's init leads its own process group, so the group gets the
   * signal: init (PID 1 inside) ignores what it has no handler for, the command receives it.
   * Processes that left the group (setsid daemons) are reached as init's direct children.
   */
  signal(signal: NodeJS.Signals): boolean {
    if (!sameProcess(this.initPid, this.initStartTime)) return false;
    const outsideGroup = childPids(this.initPid).filter((pid) => processGroupOf(pid) !== this.initPid);
    let delivered = signalProcess(-this.initPid, signal);
    for (const pid of outsideGroup) delivered = signalProcess(pid, signal) || delivered;
    return delivered;
  }

  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitStatus> {
    return signalThenKill(() => this.signal(signal), () => this.killAll(), this.exited, timeoutMs);
  }

  async kill(): Promise<ExitStatus> {
    this.killAll();
    return this.exited;
  }

  /** bwrap keeps no state of its own beyond the status file in the task's state dir. */
  async dispose(): Promise<void> {}

  /**
   * nsenter and friends from util-linux join the sandbox from outside (runtime/bwrap/exec.ts);
   * the helper's spec (cwd, environment, command) goes in a 0600 file of the task's state dir,
   * which the exec's shell opens and removes (cleanup removes it when the shell never ran).
   */
  async execCommand(spec: ExecSpec): Promise<HostCommand> {
    const specFile = join(this.stateDir, `exec-${randomBytes(6).toString('hex')}.spec`);
    const command = renderBwrapExec(this.initPid, spec, findExecTools(spec.tty), specFile);
    await writeTextFile(specFile, helperSpec(spec), 0o600);
    return { ...command, cleanup: () => removeFile(specFile) };
  }

  /** SIGKILL to the sandbox's init ends its pid namespace, so every task process dies with it. */
  private killAll(): void {
    if (sameProcess(this.initPid, this.initStartTime)) signalProcess(this.initPid, 'SIGKILL');
    if (sameProcess(this.pid, this.pidStartTime)) signalProcess(this.pid, 'SIGKILL');
  }
}

/** Where each exec tool comes from, for the error when one is missing. */
const EXEC_TOOL_PACKAGES: Readonly<Record<Exclude<keyof BwrapExecTools, 'helper'>, string>> = {
  sh: 'a POSIX shell (dash)',
  setpriv: 'util-linux',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  script: 'util-linux (Debian: bsdutils)',
};

/** The host programs an exec needs, from the agent's PATH and the standard dirs; a clear error for the first one missing. */
function findExecTools(tty: boolean): BwrapExecTools {
  const pathEnv = `${process.env.PATH ?? ''}:${HOST_PATH}`;
  const find = (name: keyof typeof EXEC_TOOL_PACKAGES, needed = true): string => {
    const path = findExecutable(name, { pathEnv });
    if (path !== undefined) return path;
    if (!needed) return name;
    throw failure('exec in task', `${name} is not on the agent's PATH`, { code: 'failed_precondition', fix: `install ${EXEC_TOOL_PACKAGES[name]} on the client` });
  };
  const helper = findExecHelper();
  if (!helper.found) {
    const [cause, fix] = helper.problem.split('; fix: ');
    throw failure('exec in task', cause ?? helper.problem, { code: 'failed_precondition', ...(fix === undefined ? {} : { fix }) });
  }
  return { sh: find('sh'), helper: helper.path, setpriv: find('setpriv'), nsenter: find('nsenter'), unshare: find('unshare', tty), script: find('script', tty) };
}

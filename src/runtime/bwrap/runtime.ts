/**
 * Runs tasks with bubblewrap. bwrap is started detached (own session) and as the task user
 * (so the task is that host uid, not a faked one; root only when the task user is root), with
 * stdout/stderr opened straight on Nomad's log FIFOs, given to the task user so the task can
 * reopen them by name (/dev/stdout) — the plugin is not in the log path, so logs keep flowing
 * while it is down, and the task never holds the plugin's own stdio — and `--json-status-fd`
 * on a per-task file, so the sandbox's pid and the exit code are on disk even when the plugin
 * is not running.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { join } from 'node:path';
import { failure } from '../../errors.js';
import { removeFile, writeTextFile } from '../../host/fs.js';
import { childPids, executableOf, fdTarget, firstChild, raiseOomScoreAdj, signalProcess } from '../../host/proc.js';
import { initIsOurs, killMonitor, LAUNCH_REPORT_TIMEOUT_MS, resolvedPath, type TaskProcesses } from '../detached-exit.js';
import { DetachedTask, exitStatusFromCode, killOwned, launchedPids, type MonitorExit, readRecord, recoveredExit, spawnMonitor } from '../detached-task.js';
import { createFile, giveFifoTo, logSinkOpeners, openAll } from '../../host/task-files.js';
import { findExecutable } from '../../host/which.js';
import type { ExecSpec, ExitStatus, HostCommand, LaunchRequest, LaunchedTask, RecoveryRecord, Runtime } from '../runtime.js';
import { renderBwrapArgs, splitArgsForFd } from './argv.js';
import { missingInterpreter } from '../interpreter.js';
import { HOST_PATH, TASK_OOM_SCORE_ADJ } from '../process-spec.js';
import { helperSpec, renderBwrapExec, type BwrapExecTools } from './exec.js';
import { findExecHelper } from './helper.js';
import { parseBwrapStatus } from './status.js';

const STATUS_FILE = 'bwrap-status.json';
/** What the diagnostic second setup runs (sandboxFailure): no such program exists in any sandbox. */
const PROBE_PROGRAM = '/nomad-driver-nix-sandbox-probe';
/** bwrap reads its options from this pipe (`--args`), so none shows in /proc/<pid>/cmdline, the task's PID 1 included. */
const ARGS_FD = 5;
const STATUS_FD = 3;
const BLOCK_FD = 4;
/** bwrap writes the sandbox init's pid to this pipe (`--info-fd`) and closes it: the pid arrives as an event. */
const INFO_FD = 6;

export class BwrapRuntime implements Runtime {
  readonly name = 'bwrap';
  readonly mountsAsTaskUser = true;
  readonly ambientCapabilities = false;

  /** Takes over a task of an earlier plugin process (recoverBwrapTask), its pids checked against this bwrap. */
  recover(record: RecoveryRecord): Promise<LaunchedTask> {
    return recoverBwrapTask(record, this.bwrapPath);
  }

  /** SIGKILLs a forgotten task's init and monitor, each only when provably the task's own. */
  killOrphan(record: RecoveryRecord): void {
    killOwned(bwrapProcesses(record, record.stateDir, record.inTaskCgroup, this.bwrapPath));
  }

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
    /** How long a launch waits for bwrap's report of the sandbox's pid. */
    private readonly reportTimeoutMs = LAUNCH_REPORT_TIMEOUT_MS,
  ) {}

  async launch(request: LaunchRequest): Promise<LaunchedTask> {
    const mark = request.mark ?? (() => undefined);
    const statusPath = join(request.stateDir, STATUS_FILE);
    const asRoot = request.process.uid === 0;
    const cgroup = request.cgroup;
    const { argv: bwrapArgv, data: argsData } = splitArgsForFd(
      renderBwrapArgs(request.plan, request.process, { statusFd: STATUS_FD, shareNet: true, asRoot, blockFd: BLOCK_FD, infoFd: INFO_FD }),
      request.process.argv,
      ARGS_FD,
    );
    // all or none: a failed open closes the others (openAll)
    const [stdout, stderr, status] = (await openAll([...logSinkOpeners(request.stdoutPath, request.stderrPath), () => createFile(statusPath)])) as [
      FileHandle,
      FileHandle,
      FileHandle,
    ];
    // the task opens them by name too (/dev/stdout, /proc/self/fd/2): make them its user's
    if (!asRoot) await Promise.all([giveFifoTo(stdout, request.process.uid), giveFifoTo(stderr, request.process.uid)]);
    mark('launch_opened');
    const { program, argv, asUser } = this.command(request, bwrapArgv);
    const {
      child,
      pid,
      exited: exitedRaw,
      collected,
    } = await spawnMonitor(
      {
        program,
        args: argv,
        // fd 4: a pipe bwrap waits on before the command starts (cgroup placement, below);
        // fd 5: a pipe bwrap reads its options from (splitArgsForFd); fd 6: a pipe bwrap
        // reports the sandbox's pid on (--info-fd), closed by bwrap and its sandbox at once
        stdio: ['ignore', stdout.fd, stderr.fd, status.fd, 'pipe', 'pipe', 'pipe'],
        env: {}, // bwrap's own environment; the task gets only --setenv values
        ...asUser,
        missingFix: 'install bubblewrap or set runtime = "runc"',
        collect: [INFO_FD],
      },
      [stdout, stderr, status],
    );
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
      (pipes[INFO_FD] as Readable | null)?.destroy();
    };
    argsPipe?.end(argsData);
    // the kernel's first cgroup move after a pause waits ~10 ms for its lock: that wait runs
    // now, while bwrap starts, not after it reported the pid (TaskCgroup.readyJoin)
    const joinReady = cgroup.readyJoin?.(pid);
    mark('launch_spawned');
    const exited = exitedRaw.then(async ({ code, signal }) => exitStatusOf(await readStatus(statusPath), code, signal));

    // bwrap reports the sandbox init's pid on the info pipe as soon as it cloned it (the same
    // pid goes to the status file, for a later plugin); the init then sets up the mounts and
    // waits on the block fd. A setup error makes it exit without running the command.
    let initPid: number | undefined;
    try {
      initPid = await reportedPid(collected.get(INFO_FD), {
        ms: this.reportTimeoutMs,
        what: `bubblewrap (pid ${pid}) neither reported the sandbox's pid on its --info-fd nor exited`,
        fix: 'check that bubblewrap works on the client (bwrap --ro-bind / / true) and see the plugin log',
      });
    } catch (error) {
      closePipes();
      await killMonitor(pid, exitedRaw);
      throw error;
    }
    if (initPid === undefined) {
      closePipes();
      throw await this.sandboxFailure(request, exitedRaw);
    }
    mark('launch_pid');
    const processes = bwrapProcesses(launchedPids(pid, initPid), request.stateDir, cgroup.contains, this.bwrapPath);
    const task = new BwrapTask(processes, new Date(), exited, request.stateDir);
    // the sandbox's init waits on the block fd: put it in the cgroup, then let it start the
    // command, which inherits the cgroup (the bwrap monitor itself stays outside) and the
    // init's oom_score_adj: not the -1000 of a systemd-run agent, which makes a task the OOM
    // killer can never pick (over memory.max its allocations fail instead: issue 15)
    try {
      await joinReady;
      mark('launch_ready');
      await cgroup.join(initPid);
      raiseOomScoreAdj(initPid, TASK_OOM_SCORE_ADJ);
    } catch (error) {
      closePipes();
      // a sandbox that died while it was set up cannot join: its own error is the cause
      if (await endedWithoutCommand(exitedRaw, statusPath, 2_000)) throw await this.sandboxFailure(request, exitedRaw);
      await task.kill();
      await killMonitor(pid, exitedRaw);
      throw error;
    }
    mark('launch_cgroup');
    block?.end('1');
    // the task is started once its command runs: the init's child is no longer bwrap (or
    // bwrap exited after the command ran); bwrap exiting without the command's exit code
    // means the command never ran (bwrap could not execute it)
    if ((await commandStarted(initPid, exitedRaw)) === 'exited' && (await readStatus(statusPath)).exitCode === undefined) {
      throw await this.sandboxFailure(request, exitedRaw);
    }
    mark('launch_running');
    return task;
  }

  /** How bwrap is started for `request`: directly as the task user, or through nsenter into Nomad's network namespace. */
  private command(request: LaunchRequest, args: readonly string[]): { program: string; argv: string[]; asUser: { uid?: number; gid?: number } } {
    const { uid, gid } = request.process;
    const asRoot = uid === 0;
    if (request.networkNamespace === undefined) return { program: this.bwrapPath, argv: [...args], asUser: asRoot ? {} : { uid, gid } };
    if (this.nsenterPath === undefined) {
      throw failure('launch task', `nsenter is not on the agent's PATH, and the group's network namespace ${request.networkNamespace} must be joined with it`, {
        code: 'failed_precondition',
        fix: 'install util-linux on the client',
      });
    }
    const argv = [`--net=${request.networkNamespace}`, ...(asRoot ? [] : ['--setuid', String(uid), '--setgid', String(gid)]), '--', this.bwrapPath, ...args];
    return { program: this.nsenterPath, argv, asUser: {} };
  }

  /**
   * The error of a sandbox that ended before its command ran. bwrap's own message went to the
   * task's stderr (Nomad's log pipe, which the plugin cannot read and `nomad alloc logs` does
   * not show for a task that never started), so the same sandbox is set up once more with a
   * program that cannot exist in it, and bwrap's message from that run is the cause: a setup
   * error again (`bwrap: Can't find source path …`), or, when the setup succeeds now, the
   * failed exec of the command itself (its `#!` interpreter missing from the closure, say).
   */
  private async sandboxFailure(request: LaunchRequest, exitedRaw: Promise<MonitorExit>): Promise<Error> {
    const { code, signal } = await exitedRaw;
    const how = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
    const probe = await this.probe(request).catch(() => undefined);
    const [command] = request.process.argv;
    const fix = "check the task's closure and the plugin's state_dir; bubblewrap's message is also the first line of the task's stderr log";
    if (probe === undefined) {
      return failure('launch task', `bubblewrap ${how} before the command ran, and a second setup of its sandbox gave no message`, {
        code: 'failed_precondition',
        fix,
      });
    }
    if (probe.includes(PROBE_PROGRAM)) {
      const interpreter = await missingInterpreter(request.plan, command ?? '');
      const why = interpreter === undefined ? '' : ` (its "#!" interpreter ${interpreter} is not in the task's closure)`;
      return failure('launch task', `bubblewrap set up the sandbox but could not execute the command ${command}${why}: bwrap ${how}`, {
        code: 'failed_precondition',
        fix:
          interpreter === undefined
            ? fix
            : `make ${interpreter} part of the closure (e.g. build the script with its interpreter as a dependency), or point command at a program`,
      });
    }
    return failure('launch task', `bubblewrap ${how} while setting up the sandbox, before the command ran: ${probe}`, { code: 'failed_precondition', fix });
  }

  /** bwrap's error lines when it sets up `request`'s sandbox to run a program that does not exist there; undefined when it wrote none. */
  private async probe(request: LaunchRequest): Promise<string | undefined> {
    const args = renderBwrapArgs(
      request.plan,
      { ...request.process, argv: [PROBE_PROGRAM], env: {} },
      { statusFd: STATUS_FD, shareNet: true, asRoot: request.process.uid === 0 },
    );
    const { program, argv, asUser } = this.command(request, args);
    const child = spawn(program, argv, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: {}, ...asUser });
    const chunks: Buffer[] = [];
    child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
    child.stdio[STATUS_FD]?.on('data', () => undefined);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    const lines = Buffer.concat(chunks)
      .toString('utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    const message = lines.filter((l) => /^(bwrap|nsenter):/.test(l)).join('; ');
    return message === '' ? undefined : message;
  }
}

/**
 * The task's processes as bwrap runs them: the monitor is `bwrapPath` (nsenter execs it) with
 * fd 3 (--json-status-fd) open on the task's status file; the init is in the task's cgroup.
 */
export function bwrapProcesses(
  pids: Pick<TaskProcesses, 'pid' | 'pidStartTime' | 'initPid' | 'initStartTime'>,
  stateDir: string,
  inTaskCgroup: (pid: number) => boolean,
  bwrapPath: string,
): TaskProcesses {
  const statusPath = join(stateDir, STATUS_FILE);
  const monitorMark = (pid: number) => {
    const target = fdTarget(pid, STATUS_FD);
    return target !== undefined && (target === statusPath || target === resolvedPath(statusPath));
  };
  return { ...pids, monitorExecutable: resolvedPath(bwrapPath), monitorMark, inTaskCgroup };
}

/**
 * A task launched by an earlier plugin process: bwrap's status file holds its exit code. Its
 * monitor counts as running only when it is provably the task's (TaskProcesses); a pid that is
 * anything else is never signalled, and without an exit record the task is not_found.
 */
export async function recoverBwrapTask(record: RecoveryRecord, bwrapPath: string): Promise<LaunchedTask> {
  const statusPath = join(record.stateDir, STATUS_FILE);
  const processes = bwrapProcesses(record, record.stateDir, record.inTaskCgroup, bwrapPath);
  const recorded = async () => (await readStatus(statusPath)).exitCode;
  const { exited } = await recoveredExit(
    processes,
    recorded,
    `its bubblewrap process ${record.pid} is gone (or is not this task's bwrap) and recorded no exit status in ${statusPath}`,
  );
  return new BwrapTask(processes, record.startedAt, exited, record.stateDir);
}

/**
 * Resolves 'running' once the sandbox init's child runs a program other than bwrap (the
 * command was executed), 'exited' when bwrap exited first. Polls /proc every 1 ms for the
 * first 100 ms (a check costs two small /proc reads; the exec usually follows the release
 * within milliseconds and a coarser poll added up to 10 ms to each start, issue 16), then
 * every 10 ms; after `timeoutMs` a sandbox that is still there counts as running. No event
 * exists for it: bwrap 0.8 learns of the exec from a close-on-exec pipe of its own it does
 * not share, and every descriptor the plugin passes is inherited by the command.
 */
async function commandStarted(initPid: number, exitedRaw: Promise<unknown>, timeoutMs = 10_000): Promise<'running' | 'exited'> {
  let exited = false;
  void exitedRaw.then(() => (exited = true));
  // the init is bwrap until it dies; gone already (unreadable), bwrap's own exit tells
  const bwrap = executableOf(initPid);
  const deadline = Date.now() + timeoutMs;
  const fastUntil = Date.now() + 100;
  for (;;) {
    if (exited) return 'exited';
    const ran =
      bwrap !== undefined &&
      childPids(initPid).some((pid) => {
        const exe = executableOf(pid);
        return exe !== undefined && exe !== bwrap;
      });
    if (ran || Date.now() > deadline) return 'running';
    await new Promise((resolve) => setTimeout(resolve, Date.now() < fastUntil ? 1 : 10));
  }
}

/**
 * The sandbox init's pid from what bwrap wrote to its `--info-fd` pipe (`output`, read to the
 * pipe's end): one JSON document (`{"child-pid": N, …}`, the format of its status, status.ts),
 * after which bwrap and its sandbox child both close the pipe, right after the clone. A bwrap
 * that failed before the clone (its options, a user namespace it may not create) wrote none:
 * undefined, as for a missing pipe. Rejects with a `deadline_exceeded` DriverError "failed to
 * launch task: <what> within <N> s" when the pipe has not ended within `deadline.ms`.
 */
async function reportedPid(
  output: Promise<Buffer> | undefined,
  deadline: { readonly ms: number; readonly what: string; readonly fix: string },
): Promise<number | undefined> {
  if (output === undefined) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), deadline.ms)));
  try {
    const text = await Promise.race([output, expired]);
    if (text === undefined) {
      throw failure('launch task', `${deadline.what} within ${Math.round(deadline.ms / 1000)} s`, { code: 'deadline_exceeded', fix: deadline.fix });
    }
    return parseBwrapStatus(text.toString('utf8')).childPid;
  } finally {
    clearTimeout(timer);
  }
}

/** True when bwrap exits within `graceMs` without having run the command (no exit code in its status). */
async function endedWithoutCommand(exitedRaw: Promise<unknown>, statusPath: string, graceMs: number): Promise<boolean> {
  const ended = await Promise.race([exitedRaw.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref())]);
  return ended && (await readStatus(statusPath)).exitCode === undefined;
}

async function readStatus(path: string): Promise<{ childPid?: number; exitCode?: number }> {
  return (await readRecord(path, parseBwrapStatus)) ?? {};
}

/**
 * bwrap's init exits with the command's status, 128+N when the command died of signal N, and
 * bwrap reports that number as `exit-code`.
 */
export function exitStatusOf(status: { exitCode?: number }, code: number | null, signal: NodeJS.Signals | null): ExitStatus {
  return exitStatusFromCode(status.exitCode ?? code ?? 128 + signalNumber(signal));
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (signal === null) return 0;
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return table[signal] ?? 0;
}

class BwrapTask extends DetachedTask {
  constructor(
    processes: TaskProcesses,
    startedAt: Date,
    exited: Promise<ExitStatus>,
    /** The task's state dir (root-only): exec spec files go there. */
    private readonly stateDir: string,
  ) {
    super(processes, startedAt, exited);
  }

  /**
   * The signal goes to the command alone, as Nomad's exec and docker drivers send it: the
   * sandbox's init's first child (bwrap's init starts it before anything else; orphans that
   * reparent to the init come later), checked to be in the task's cgroup. A process manager
   * (nginx's master, postmaster, supervisord) signals its children itself, in its own order;
   * signalling the command's process group made every child get it too (issue 13: nginx's
   * workers got the master's SIGHUP and SIGQUIT, a child without a handler died of a SIGHUP
   * meant for its parent). A command without a handler still dies of it: it is not PID 1.
   */
  signal(signal: NodeJS.Signals): boolean {
    if (!initIsOurs(this.processes)) return false;
    const command = firstChild(this.initPid);
    return command !== undefined && this.processes.inTaskCgroup(command) && signalProcess(command, signal);
  }

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

  /** SIGKILL to the sandbox's init (its pid namespace dies with it) and to bwrap, each only when provably the task's. */
  protected override killAll(): void {
    killOwned(this.processes);
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
    throw failure('exec in task', `${name} is not on the agent's PATH`, {
      code: 'failed_precondition',
      fix: `install ${EXEC_TOOL_PACKAGES[name]} on the client`,
    });
  };
  const helper = findExecHelper();
  if (!helper.found) {
    throw failure('exec in task', helper.cause, { code: 'failed_precondition', fix: helper.fix });
  }
  return {
    sh: find('sh'),
    helper: helper.path,
    setpriv: find('setpriv'),
    nsenter: find('nsenter'),
    unshare: find('unshare', tty),
    script: find('script', tty),
  };
}

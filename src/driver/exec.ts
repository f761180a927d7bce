/**
 * Commands run in a running task: ExecTask (script checks, template change scripts) and
 * ExecTaskStreaming (`nomad alloc exec`). The command gets the task's user, cwd, environment,
 * namespaces and cgroup (driver/exec-task.ts planExec); the runtime renders how to enter them.
 */
import { failure, quote } from '../errors.js';
import { executableKindInRoot } from '../host/which.js';
import { runInTask, startInTask, type ExecSession } from '../host/exec-in-task.js';
import { firstChild, pathInRootOf, readEnviron } from '../host/proc.js';
import type { Logger } from '../log/logger.js';
import type { ExitStatus } from '../runtime/runtime.js';
import { planExec } from './exec-task.js';
import type { TaskHandle } from './task.js';

/** What ExecTask returns: the command's output and how it ended. */
export interface ExecResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly exit: ExitStatus;
}

/** A command running in a task for `nomad alloc exec` (input, resize, kill, exit). */
export type { ExecSession } from '../host/exec-in-task.js';

/** Where an exec'd command's output goes. */
export interface ExecOutput {
  readonly stdout: (data: Buffer) => void;
  readonly stderr: (data: Buffer) => void;
}

/**
 * ExecTask: runs `command` in the task without a terminal and with empty input for at most
 * `timeoutMs` (0: no limit) and returns its output and exit status. A program that cannot be
 * found is exit 127 with the reason on stderr, as in a shell. Past the timeout the command's
 * processes are killed and the call fails with deadline_exceeded, which Nomad shows with the
 * check or the template event.
 */
export async function execTask(handle: TaskHandle, command: readonly string[], timeoutMs: number, logger: Logger): Promise<ExecResult> {
  const prepared = await prepareExec(handle, command, false);
  if ('failed' in prepared) {
    return { stdout: Buffer.alloc(0), stderr: Buffer.from(prepared.failed.message), exit: { exitCode: prepared.failed.exitCode, signal: 0, oomKilled: false } };
  }
  const result = await runInTask(await handle.launched.execCommand(prepared.spec), { timeoutMs });
  logger.debug('exec finished', { task_id: handle.request.id, command: command.join(' '), exit_code: result.exitCode, timed_out: result.timedOut });
  if (result.timedOut) {
    throw failure('exec in task', `${quote(command.join(' '))} ran longer than its timeout of ${timeoutMs} ms; its processes were killed`, {
      code: 'deadline_exceeded',
      fix: "raise the check's or the change script's timeout, or make the command finish sooner",
    });
  }
  return { stdout: result.stdout, stderr: result.stderr, exit: { exitCode: result.exitCode, signal: result.signal, oomKilled: false } };
}

/**
 * ExecTaskStreaming: starts `command` in the task, on a terminal opened inside the task when
 * `tty`, with its output going to `output`; the caller feeds input, window sizes and EOF to the
 * session and waits for its exit. A program that cannot be found is a session that printed the
 * reason and exited 127.
 */
export async function startExec(handle: TaskHandle, command: readonly string[], tty: boolean, output: ExecOutput, logger: Logger): Promise<ExecSession> {
  const taskId = handle.request.id;
  const prepared = await prepareExec(handle, command, tty);
  if ('failed' in prepared) {
    // a terminal in raw mode needs carriage returns
    output.stderr(Buffer.from(tty ? prepared.failed.message.replace(/\n/g, '\r\n') : prepared.failed.message));
    const exit = { exitCode: prepared.failed.exitCode, signal: 0 };
    const none = () => undefined;
    return { pid: -1, write: none, closeStdin: none, resize: none, kill: none, pause: none, resume: none, exited: Promise.resolve(exit) };
  }
  const session = await startInTask(await handle.launched.execCommand(prepared.spec), { tty, onStdout: output.stdout, onStderr: output.stderr });
  logger.debug('exec started', { task_id: taskId, command: command.join(' '), tty, pid: session.pid });
  void session.exited.then((exit) => logger.debug('exec finished', { task_id: taskId, command: command.join(' '), exit_code: exit.exitCode }));
  return session;
}

/** The ExecSpec for `command` in a running task (driver/exec-task.ts), from what the host says about it now. */
export async function prepareExec(handle: TaskHandle, command: readonly string[], tty: boolean): Promise<ReturnType<typeof planExec>> {
  if (handle.state === 'exited') throw failure('exec in task', 'the task has exited', { code: 'failed_precondition' });
  const persisted = handle.persisted;
  // a recovered task: its command as recorded, with the environment Nomad sent again
  const launched = handle.process ?? {
    argv: persisted.argv,
    env: handle.request.env,
    cwd: persisted.cwd,
    uid: persisted.user.uid,
    gid: persisted.user.gid,
    capabilities: persisted.capabilities,
  };
  const initPid = handle.launched.initPid;
  const commandPid = firstChild(initPid);
  return planExec(
    {
      command,
      tty,
      launched,
      environ: commandPid === undefined ? undefined : readEnviron(commandPid),
      cgroupProcsFiles: handle.cgroup === undefined ? [] : await handle.cgroup.procsFiles(),
    },
    // resolved as inside the task: an absolute symlink there must not lead to the host's files
    (taskPath) => executableKindInRoot(pathInRootOf(initPid, ''), taskPath),
  );
}

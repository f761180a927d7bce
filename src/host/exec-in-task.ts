/**
 * Runs the host command a runtime rendered for an exec into a task (runtime/*\/exec.ts) and
 * relays its I/O: through pipes, or on a terminal from node-pty when the caller asked for one.
 *
 * With a terminal, node-pty's terminal is only the plugin's end: the runtime's relay (runc
 * exec, or util-linux script for bubblewrap) opens the task's terminal inside the task and
 * copies between the two, and a resize of ours reaches it as SIGWINCH. The relay switches our
 * terminal to raw mode, but only once it runs; input written before would be echoed and
 * line-edited by our terminal. So the command starts behind a host shell that makes it raw
 * (`stty raw -echo`) and execs the relay, and input waits until that exec happened.
 *
 * Every command runs in its own process group; killing a session (timeout, client gone)
 * SIGKILLs that group and every process below it.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { failure } from '../errors.js';
import { killProcessTree } from './proc.js';
import { findExecutable } from './which.js';

/** What runtime/runtime.ts calls a HostCommand (host/ does not import upward). */
export interface ExecCommand {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cleanup?: () => Promise<void>;
}

export interface ExecExit {
  /** The command's exit code; 128+N when signal N ended it. */
  readonly exitCode: number;
  /** The signal that ended it, 0 when it exited. */
  readonly signal: number;
}

export interface StartOptions {
  readonly tty: boolean;
  /** Initial terminal size (tty only). */
  readonly columns?: number;
  readonly rows?: number;
  /** False: the command's input is empty (EOF at once). */
  readonly stdin?: boolean;
  readonly onStdout: (data: Buffer) => void;
  /** Never called with a terminal: the terminal carries both streams. */
  readonly onStderr: (data: Buffer) => void;
}

export interface ExecSession {
  readonly pid: number;
  write(data: Uint8Array): void;
  /** End of input: EOF on the pipe, or the terminal's EOF character (^D). */
  closeStdin(): void;
  resize(columns: number, rows: number): void;
  /** SIGKILLs the command's process group and every process below it. */
  kill(): void;
  /** Stops reading the command's output until resume() (the reader is behind; the command blocks on a full pipe). */
  pause(): void;
  resume(): void;
  /** Resolves once the command exited and its output was delivered (and the command cleaned up). */
  readonly exited: Promise<ExecExit>;
}

/** How long output may still arrive after the command exited (a background child can hold the pipes). */
const DRAIN_MS = 1_000;
/** The longest input waits for the terminal to be raw. */
const RAW_WAIT_MS = 2_000;
const EOT = Buffer.from([4]);

/**
 * Nomad's ExitResult from Node's (code, signal) pair, with the convention the task's own exit
 * follows: a command ended by signal N is exit code 128+N with signal N (relays such as nsenter,
 * script and runc report a signalled command as 128+N).
 */
export function exitOf(code: number | null, signal: NodeJS.Signals | number | null): ExecExit {
  const number = typeof signal === 'number' ? signal : signal === null ? 0 : (constants.signals[signal] ?? 0);
  if (number > 0) return { exitCode: 128 + number, signal: number };
  const exitCode = code ?? 0;
  return { exitCode, signal: exitCode > 128 && exitCode < 128 + 65 ? exitCode - 128 : 0 };
}

/** Starts `command`; throws a DriverError when it cannot be started at all. */
export async function startInTask(command: ExecCommand, options: StartOptions): Promise<ExecSession> {
  const cleanup = () => command.cleanup?.().catch(() => undefined);
  let session: ExecSession;
  try {
    session = options.tty ? await startOnTerminal(command, options) : startOnPipes(command, options);
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { ...session, exited: session.exited.finally(cleanup) };
}

function startOnPipes(command: ExecCommand, options: StartOptions): ExecSession {
  const child = spawn(command.file, [...command.args], {
    env: { ...command.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own process group, killed as one
  });
  const pid = child.pid;
  if (pid === undefined) {
    // spawn reports ENOENT and friends asynchronously
    const error = new Promise<never>((_, reject) =>
      child.once('error', (e) => reject(failure('exec in task', `cannot run ${command.file}: ${e.message}`, { code: 'failed_precondition', cause: e }))),
    );
    return {
      pid: -1,
      write: () => undefined,
      closeStdin: () => undefined,
      resize: () => undefined,
      kill: () => undefined,
      pause: () => undefined,
      resume: () => undefined,
      exited: error,
    };
  }
  const { stdin, stdout, stderr } = child;
  stdin.on('error', () => undefined); // the command may exit without reading its input
  if (options.stdin === false) stdin.end();
  stdout.on('data', (chunk: Buffer) => options.onStdout(chunk));
  stderr.on('data', (chunk: Buffer) => options.onStderr(chunk));
  const exited = new Promise<ExecExit>((resolve) => {
    child.once('exit', (code, signal) => {
      const result = exitOf(code, signal);
      const drained = setTimeout(() => {
        stdout.destroy();
        stderr.destroy();
        resolve(result);
      }, DRAIN_MS);
      child.once('close', () => {
        clearTimeout(drained);
        resolve(result);
      });
    });
  });
  return {
    pid,
    write: (data) => {
      if (stdin.writable) stdin.write(data);
    },
    closeStdin: () => stdin.end(),
    resize: () => undefined,
    kill: () => killProcessTree(pid),
    pause: () => {
      stdout.pause();
      stderr.pause();
    },
    resume: () => {
      stdout.resume();
      stderr.resume();
    },
    exited,
  };
}

let ptyModule: Promise<typeof import('node-pty')> | undefined;
/** node-pty is loaded on the first terminal, off the plugin's start path. */
const loadPty = () => (ptyModule ??= import('node-pty'));

/** `stty raw -echo` on the terminal, then the command (same pid). */
const RAW_SCRIPT = 'stty raw -echo || exit 125\nexec "$@"';
/** $0 of that shell, by which its command line is told apart from the command's. */
const RAW_GATE_NAME = 'nix-exec-raw';

async function startOnTerminal(command: ExecCommand, options: StartOptions): Promise<ExecSession> {
  const pty = await loadPty();
  const sh = findExecutable('sh', { pathEnv: command.env.PATH ?? '/usr/bin:/bin' });
  if (sh === undefined) throw failure('exec in task', 'no POSIX shell on the host', { code: 'failed_precondition', fix: 'install dash (sh) on the client' });
  let terminal: import('node-pty').IPty;
  try {
    terminal = pty.spawn(sh, ['-c', RAW_SCRIPT, RAW_GATE_NAME, command.file, ...command.args], {
      name: command.env.TERM ?? 'xterm',
      cols: positive(options.columns, 80),
      rows: positive(options.rows, 24),
      env: { ...command.env },
      encoding: null, // Buffers both ways: the task's bytes are not ours to decode
    });
  } catch (error) {
    throw failure('exec in task', `cannot open a terminal: ${(error as Error).message}`, { code: 'failed_precondition', cause: error });
  }
  const pid = terminal.pid;
  terminal.onData((data) => options.onStdout(Buffer.from(data as unknown as Uint8Array)));
  const exited = new Promise<ExecExit>((resolve) => terminal.onExit(({ exitCode, signal }) => resolve(exitOf(exitCode, signal ?? 0))));

  // input waits until the shell has made the terminal raw and exec'd the relay
  const pending: Buffer[] = [];
  let ready = false;
  const flush = () => {
    if (ready) return;
    ready = true;
    for (const chunk of pending.splice(0)) terminal.write(chunk);
  };
  void waitForExec(pid, exited).then(flush);
  const send = (data: Buffer) => (ready ? terminal.write(data) : pending.push(data));
  return {
    pid,
    write: (data) => send(Buffer.from(data)),
    closeStdin: () => send(EOT),
    resize: (columns, rows) => {
      if (columns > 0 && rows > 0) {
        try {
          terminal.resize(columns, rows);
        } catch {
          // the terminal closed: nothing left to resize
        }
      }
    },
    kill: () => killProcessTree(pid),
    pause: () => terminal.pause(),
    resume: () => terminal.resume(),
    exited,
  };
}

/**
 * Resolves once `pid` has run the raw-terminal shell and exec'd the command after it: its
 * command line is neither the plugin's (the fork before exec) nor the shell's. Also when it
 * exited, or after RAW_WAIT_MS.
 */
async function waitForExec(pid: number, exited: Promise<unknown>): Promise<void> {
  let own: string;
  try {
    own = readFileSync('/proc/self/cmdline', 'latin1');
  } catch {
    return;
  }
  let done = false;
  void exited.then(() => (done = true));
  const deadline = Date.now() + RAW_WAIT_MS;
  while (!done && Date.now() < deadline) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      return;
    }
    if (execedCommand(cmdline, own)) return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * Whether a process whose /proc/<pid>/cmdline reads `cmdline` has exec'd the command behind the
 * raw-terminal shell: neither the plugin's own command line (`own`: the fork before exec) nor the
 * shell's, and not empty — an empty cmdline is a process inside execve (proc(5): its old memory
 * is gone and the new one's arguments not yet set up) or a zombie. Counting an empty one as the
 * command let input through before `stty raw -echo`, and the terminal echoed it.
 */
export function execedCommand(cmdline: string, own: string): boolean {
  return cmdline !== '' && cmdline !== own && cmdline.split('\0')[3] !== RAW_GATE_NAME;
}

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isSafeInteger(value) && value > 0 ? value : fallback;
}

export interface CapturedExec extends ExecExit {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly timedOut: boolean;
}

/** Output kept per stream: script checks and change scripts print little; a runaway one is cut. */
export const CAPTURE_LIMIT = 4 * 1024 * 1024;

/**
 * Runs `command` without a terminal and input to completion and returns its output; after
 * `timeoutMs` (0: none) its process group and everything below are killed and `timedOut` is set.
 */
export async function runInTask(command: ExecCommand, options: { readonly timeoutMs: number }): Promise<CapturedExec> {
  const stdout = new Capture();
  const stderr = new Capture();
  const session = await startInTask(command, { tty: false, stdin: false, onStdout: (d) => stdout.add(d), onStderr: (d) => stderr.add(d) });
  let timedOut = false;
  const onTimeout = () => {
    timedOut = true;
    session.kill();
  };
  const timer = options.timeoutMs > 0 ? setTimeout(onTimeout, options.timeoutMs) : undefined;
  try {
    const exit = await session.exited;
    return { ...exit, stdout: stdout.bytes(), stderr: stderr.bytes(), timedOut };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

class Capture {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  add(chunk: Buffer): void {
    if (this.size >= CAPTURE_LIMIT) return;
    const kept = chunk.subarray(0, CAPTURE_LIMIT - this.size);
    this.chunks.push(kept);
    this.size += kept.length;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/**
 * Runs a long host command (a Nix build can take minutes) and hands its stderr to the caller
 * line by line as it arrives, so progress can be reported while it runs. Unlike exec.ts it does
 * not judge the exit status: the caller knows what the command's output means and builds the
 * error itself. Cancellable with an AbortSignal and a timeout.
 *
 * Stopping sends SIGTERM every 250 ms, then SIGKILL after 5 s. One SIGTERM is not enough for
 * Nix 2.8: its signal thread wakes the worker with SIGUSR1, and a signal landing just before the
 * worker enters poll() is lost (seen in 5 of 15 cancellations right at a build's start; the
 * build then ran to its end). Repeating it made 15 of 15 stop within 0.4 s. If the command has
 * to be killed, its children are killed with it, those leading their own process group (Nix's
 * builders run in their own session) with their whole group, so nothing keeps running orphaned.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { childPids, processGroupOf } from './proc.js';
import { failure } from '../errors.js';

export interface StreamOptions {
  /** Called with each stderr line (without its newline) as it arrives. */
  readonly onStderrLine?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Kill the command when it runs longer; no limit when absent. */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** How long a stopped command gets before SIGKILL (default 5 s). */
  readonly killGraceMs?: number;
}

export interface StreamResult {
  readonly stdout: string;
  /** The last stderr lines (up to 50), for callers that do not stream them. */
  readonly stderrTail: readonly string[];
  /** Null when the command was killed by a signal. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly aborted: boolean;
}

const TERM_REPEAT_MS = 250;
const KILL_GRACE_MS = 5_000;
const TAIL_LINES = 50;

/**
 * Runs `file args…` to completion and reports how it ended. Throws a DriverError only when the
 * command cannot be started at all (not found, not executable).
 */
export async function runStreaming(file: string, args: readonly string[], options: StreamOptions = {}): Promise<StreamResult> {
  const child = spawn(file, [...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env === undefined ? process.env : { ...process.env, ...options.env },
  });
  const stdoutChunks: Buffer[] = [];
  const tail: string[] = [];
  let timedOut = false;
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  let termTimer: NodeJS.Timeout | undefined;

  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const kill = () => {
    if (exited() || child.pid === undefined) return;
    // Children leading their own process group are killed with their group, others alone.
    const targets = childPids(child.pid).map((pid) => (processGroupOf(pid) === pid ? -pid : pid));
    child.kill('SIGKILL');
    for (const target of targets) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const stop = () => {
    if (exited() || killTimer !== undefined) return;
    child.kill('SIGTERM');
    termTimer = setInterval(() => (exited() ? undefined : child.kill('SIGTERM')), TERM_REPEAT_MS);
    killTimer = setTimeout(kill, options.killGraceMs ?? KILL_GRACE_MS);
  };
  const onAbort = () => {
    aborted = true;
    stop();
  };
  if (options.signal?.aborted === true) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const timeout =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          stop();
        }, options.timeoutMs);

  child.stdout.on('data', (chunk: Buffer) => stdoutChunks.push(chunk));
  const lines = createInterface({ input: child.stderr, crlfDelay: Infinity });
  lines.on('line', (line) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    options.onStderrLine?.(line);
  });
  const stderrDone = new Promise<void>((resolve) => lines.once('close', resolve));

  try {
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, sig) => resolve([code, sig]));
    });
    await stderrDone;
    return { stdout: Buffer.concat(stdoutChunks).toString('utf8'), stderrTail: tail, exitCode, signal, timedOut, aborted };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw failure(`run ${file}`, code === 'ENOENT' ? 'it does not exist' : String((error as Error).message), {
      code: 'failed_precondition',
      cause: error,
    });
  } finally {
    if (timeout !== undefined) clearTimeout(timeout);
    if (killTimer !== undefined) clearTimeout(killTimer);
    if (termTimer !== undefined) clearInterval(termTimer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

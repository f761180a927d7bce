/**
 * The one place that runs short-lived host commands (version probes, nix queries). Built on
 * execa; failures become DriverErrors whose message names the command, what happened and the
 * tail of its stderr.
 */
import { failure } from '../errors.js';

/** execa takes ~80 ms to import; load it on first use so it stays off the handshake path. */
let execaModule: Promise<typeof import('execa')> | undefined;
const loadExeca = () => (execaModule ??= import('execa'));

export interface RunOptions {
  /** Kill the command (SIGTERM, then SIGKILL after 2 s) when it runs longer. */
  readonly timeoutMs?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** Start with only `env` (no variables inherited from the plugin). */
  readonly cleanEnv?: boolean;
}

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
}

const STDERR_TAIL = 800;

/** Runs `file args…` and returns its output; throws a DriverError unless it exits 0. */
export async function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { execa } = await loadExeca();
  const result = await execa(file, args, {
    reject: false,
    stdin: 'ignore',
    timeout: options.timeoutMs ?? 30_000,
    forceKillAfterDelay: 2_000,
    env: options.env ?? {},
    extendEnv: options.cleanEnv !== true,
    stripFinalNewline: true,
  });
  if (result.failed) {
    const stderr = String(result.stderr ?? '').trim();
    const tail = stderr.length > STDERR_TAIL ? `…${stderr.slice(-STDERR_TAIL)}` : stderr;
    const what = result.timedOut
      ? `timed out after ${options.timeoutMs ?? 30_000} ms`
      : result.exitCode !== undefined
        ? `exited with code ${result.exitCode}`
        : result.signal !== undefined
          ? `was killed by ${result.signal}`
          : String(result.originalMessage ?? result.shortMessage);
    throw failure(`run ${[file, ...args].join(' ')}`, tail === '' ? what : `${what}: ${tail}`, {
      code: 'failed_precondition',
      cause: result,
    });
  }
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
}

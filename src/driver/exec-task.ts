/**
 * The decisions behind a command exec'd into a running task (`nomad alloc exec`, script
 * checks, template change scripts): which program, environment, user and directory it gets.
 * Pure: what the host knows (the command process's environment, which files are executable
 * in the task's root) comes in as arguments and callbacks; the runtime renders the result and
 * host/exec-in-task.ts runs it.
 *
 * The command gets what the task's command got: the task user (never root unless the task is
 * root), the task's capabilities (none for an unprivileged task), the task's working directory
 * and the environment the task's command was started with, read from its process so it holds
 * after a plugin restart too (the launch-time environment when that process is gone).
 */
import { INTERNAL_FIX, failure, quote } from '../errors.js';
import { absolutePathProblem } from '../paths.js';
import type { ExecutableKind } from '../host/which.js';
import type { ExecSpec, ProcessSpec } from '../runtime/runtime.js';

/** The exit status a shell gives a command it cannot find, and one it finds but cannot run. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_NOT_EXECUTABLE = 126;

/** What running an exec'd command would do: run a program, or fail as a shell would (exit 126/127 with a message). */
export type CommandResolution =
  | { readonly found: true; readonly path: string }
  | { readonly found: false; readonly exitCode: number; readonly message: string };

/** POSIX-style join of a directory and a relative path, normalising "." and ".." lexically. */
function joinPath(dir: string, path: string): string {
  const parts: string[] = [];
  for (const part of `${dir}/${path}`.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/**
 * argv[0] as a shell resolves it in the task: with a slash, relative to `cwd` (or absolute);
 * without one, the first executable file in the task's PATH (its closure's bin directories;
 * empty entries mean `cwd`). `kind` answers for a path inside the task's root.
 */
export function resolveExecCommand(name: string, pathEnv: string, cwd: string, kind: (taskPath: string) => ExecutableKind): CommandResolution {
  if (name.includes('/')) {
    const path = name.startsWith('/') ? joinPath('/', name) : joinPath(cwd, name);
    const found = kind(path);
    if (found === 'executable') return { found: true, path };
    return found === 'missing'
      ? {
          found: false,
          exitCode: EXIT_NOT_FOUND,
          message: notRunnable(
            `${quote(name)} does not exist in the task`,
            "check the path; the task's root holds its closure, /alloc, /local, /secrets and /tmp",
          ),
        }
      : { found: false, exitCode: EXIT_NOT_EXECUTABLE, message: notRunnable(`${quote(name)} is not an executable file`, 'name an executable program') };
  }
  let notExecutable: string | undefined;
  for (const dir of pathEnv.split(':')) {
    const base = dir === '' ? cwd : dir;
    if (!base.startsWith('/')) continue; // a relative PATH entry depends on where the shell happens to be
    const path = joinPath(base, name);
    const found = kind(path);
    if (found === 'executable') return { found: true, path };
    if (found === 'not-executable') notExecutable ??= path;
  }
  if (notExecutable !== undefined) {
    return { found: false, exitCode: EXIT_NOT_EXECUTABLE, message: notRunnable(`${notExecutable} is not an executable file`, 'name an executable program') };
  }
  return {
    found: false,
    exitCode: EXIT_NOT_FOUND,
    message: notRunnable(
      `command ${quote(name)} is not in the task's PATH (${pathEnv === '' ? 'empty' : pathEnv})`,
      "run a program of the task's closure (its bin directories are the PATH), add the package that provides it to the task's packages, or give its absolute path",
    ),
  };
}

function notRunnable(cause: string, fix: string): string {
  return `${failure('exec in task', cause, { fix }).message}\n`;
}

/**
 * The environment of an exec'd command: the task command's own (`environ`, read from its
 * process), else the one the driver launched it with. A terminal gets TERM=xterm when the
 * task has no TERM, as `docker exec -t` does, so shells and pagers know what they talk to.
 */
export function execEnvironment(
  environ: Readonly<Record<string, string>> | undefined,
  launchEnv: Readonly<Record<string, string>>,
  tty: boolean,
): Record<string, string> {
  const env = { ...(environ ?? launchEnv) };
  if (tty && env.TERM === undefined) env.TERM = 'xterm';
  return env;
}

export interface ExecInput {
  /** Nomad's command: program and arguments. */
  readonly command: readonly string[];
  readonly tty: boolean;
  /** The task's command as the driver launched it. */
  readonly launched: ProcessSpec;
  /** The environment of the task's command process, when it could be read. */
  readonly environ: Readonly<Record<string, string>> | undefined;
  readonly cgroupProcsFiles: readonly string[];
}

/**
 * The ExecSpec of Nomad's command in the task, or the shell-like failure (126/127 and a
 * message for stderr) when its program cannot be run. Throws `invalid_argument` for an empty
 * command.
 */
export function planExec(
  input: ExecInput,
  kind: (taskPath: string) => ExecutableKind,
): { spec: ExecSpec } | { failed: Extract<CommandResolution, { found: false }> } {
  const [name, ...args] = input.command;
  if (name === undefined || name === '') {
    throw failure('exec in task', 'the command is empty', { code: 'invalid_argument', fix: 'name the program to run, e.g. `nomad alloc exec <alloc> sh`' });
  }
  const { launched } = input;
  const env = execEnvironment(input.environ, launched.env, input.tty);
  const cwdProblem = absolutePathProblem(launched.cwd);
  if (cwdProblem !== undefined)
    throw failure('exec in task', `the task's working directory ${quote(launched.cwd)} ${cwdProblem}`, { code: 'internal', fix: INTERNAL_FIX });
  const resolved = resolveExecCommand(name, env.PATH ?? '', launched.cwd, kind);
  if (!resolved.found) return { failed: resolved };
  return {
    spec: {
      argv: [resolved.path, ...args],
      env,
      cwd: launched.cwd,
      uid: launched.uid,
      gid: launched.gid,
      capabilities: launched.capabilities,
      tty: input.tty,
      cgroupProcsFiles: input.cgroupProcsFiles,
    },
  };
}

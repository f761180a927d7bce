/**
 * Why a task's command cannot be executed in its sandbox although it is an executable file of
 * the closure: a script whose `#!` interpreter is not in the closure. The kernel's execve then
 * fails with ENOENT inside the sandbox (bwrap: `execvp …: No such file or directory`; tini:
 * exit 127), before the command runs.
 */
import { join } from 'node:path';
import { allPathsExist, readHead } from '../host/fs.js';
import { NIX_STORE_DIR } from '../paths.js';
import type { RootPlan } from '../rootfs/plan.js';

/**
 * The `#!` interpreter of `command` when it is a script whose interpreter is not in the store
 * view the plan binds at /nix/store; undefined otherwise (not a script, an interpreter outside
 * /nix/store, or one that is there).
 */
export async function missingInterpreter(plan: RootPlan, command: string): Promise<string | undefined> {
  const view = plan.ops.find((m) => m.kind === 'ro-bind' && m.target === NIX_STORE_DIR);
  if (view === undefined || view.kind !== 'ro-bind' || !command.startsWith(`${NIX_STORE_DIR}/`)) return undefined;
  const inView = (path: string) => join(view.source, path.slice(NIX_STORE_DIR.length + 1));
  // the first line only: the command is often a binary of megabytes (issue 16: reading it
  // whole cost a runc start ~10 ms on a loaded host)
  const head = await readHead(inView(command), 256).then(
    (b) => b.toString('utf8'),
    () => '',
  );
  if (!head.startsWith('#!')) return undefined;
  const interpreter = head.slice(2).split('\n')[0]?.trim().split(/\s+/)[0] ?? '';
  if (interpreter === '') return undefined;
  // one outside the store is the root plan's business (e.g. /bin/sh), not the closure's
  if (!interpreter.startsWith(`${NIX_STORE_DIR}/`)) return undefined;
  return (await allPathsExist([inView(interpreter)])) ? undefined : interpreter;
}

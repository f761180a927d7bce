/**
 * A runc task gets no signal nobody sent it. runc is a Go program: the Go runtime preempts its
 * threads with SIGURG, and a foreground `runc run` (Debian 12's 1.1.5) relayed those to the
 * container's init, so tini passed SIGURGs to the command and, when one came after the command
 * exited, wrote `[WARN  tini (1)] Child was dead when forwarding signal` into the task's
 * stderr (a CI run saw it in `nomad alloc logs -stderr`). Go preempts more on a busy host, so the
 * test keeps the host's CPUs busy while the task runs and counts the SIGURGs it trapped.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { busyboxPath } from './support/nix-fixtures.js';
import { call, startPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;

// busybox sh runs its trap between commands; 5 s of 0.1 s sleeps gives it 50 chances
const COUNT_SIGURG = 'n=0; trap "n=\\$((n+1))" URG; i=0; while [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; echo "sigurg=$n"';

describe('a runc task under a busy host', { skip: isRoot ? false : 'needs root' }, () => {
  it('receives no SIGURG from the runc relaying it, and its stderr holds nothing of tini', async () => {
    const sandbox = taskSandbox();
    const plugin = await startPlugin();
    const spinners: ChildProcess[] = [];
    try {
      await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime: 'runc' }) });
      for (let i = 0; i < availableParallelism() * 2; i++) spinners.push(spawn('/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
      // six tasks at once: on the code before the fix, about one run in three relayed a SIGURG
      const results = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const task = {
            ...sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', COUNT_SIGURG]),
            stdout_path: join(sandbox.allocDir, `stdout-${i}`),
            stderr_path: join(sandbox.allocDir, `stderr-${i}`),
          };
          for (const path of [task.stdout_path, task.stderr_path]) writeFileSync(path, '', { mode: 0o666 });
          await call(plugin.clients.driver, 'StartTask', { task }, 60_000);
          const waited = await call<unknown, { result: { exit_code: number } }>(plugin.clients.driver, 'WaitTask', { task_id: task.id }, 60_000);
          await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
          return { stdout: readFileSync(task.stdout_path, 'utf8'), stderr: readFileSync(task.stderr_path, 'utf8'), exitCode: waited.result.exit_code };
        }),
      );
      assert.deepEqual(results, Array(6).fill({ stdout: 'sigurg=0\n', stderr: '', exitCode: 0 }));
    } finally {
      for (const spinner of spinners) spinner.kill('SIGKILL');
      plugin.kill('SIGKILL');
      sandbox.remove();
    }
  });
});

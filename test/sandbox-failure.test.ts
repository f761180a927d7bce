/**
 * A runtime that fails before the task's command runs makes StartTask fail with the runtime's
 * cause, and the task is never reported as started; nothing of it is left. Through the real
 * plugin socket:
 * - a script whose `#!` interpreter is not in the closure, on both runtimes (bwrap: its failed
 *   exec, read back from a second setup of the sandbox; runc: checked before `runc run`, since
 *   tini's failed exec is only an exit 127);
 * - on bwrap, a store view the task user cannot reach: bwrap's own setup error, where the
 *   cgroup hand-off used to report ESRCH (or the task was reported started, then exit 1);
 * - on bwrap, a dynamically linked host program in the closure (its ELF loader is not in the
 *   sandbox): bwrap exits without the command's exit code, which is a failed start, not exit 1.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { buildWithBusybox } from './support/nix-fixtures.js';
import { call, startPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox, type TaskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;
const MISSING = '/nix/store/00000000000000000000000000000000-missing/bin/sh';

function leftovers(sandbox: TaskSandbox): string[] {
  const list = (dir: string) => {
    try {
      return readdirSync(join(sandbox.stateDir, dir)).map((n) => `${dir}/${n}`);
    } catch {
      return [];
    }
  };
  return [...list('views'), ...list('etc'), ...list('tasks'), ...readdirSync(sandbox.gcRoots).map((n) => `gc root ${n}`)];
}

/** A store path holding bin/true copied from the host: dynamically linked, its loader outside any closure. */
function dynamicProgram(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nix-fixture-dynamic-'));
  try {
    const root = join(dir, 'host-true');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync('/bin/true', join(root, 'bin', 'true'));
    return execFileSync('nix-store', ['--add', root], { encoding: 'utf8' }).trim();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const runtime of ['bwrap', 'runc'] as const) {
  describe(`a runtime failing before the command runs (${runtime})`, { skip: isRoot ? false : 'needs root', timeout: 300_000 }, () => {
    it('a script whose #! interpreter is not in the closure fails StartTask with that cause', async () => {
      const path = buildWithBusybox(
        'missing-interpreter',
        `mkdir -p $out/bin && printf '#!${MISSING}\\necho never\\n' > $out/bin/app && chmod +x $out/bin/app`,
      );
      const sandbox = taskSandbox();
      const plugin = await startPlugin();
      try {
        await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
        const task = sandboxTask(sandbox, path, 'bin/app', []);
        const error = await call(plugin.clients.driver, 'StartTask', { task }, 60_000).then(
          () => undefined,
          (e: grpc.ServiceError) => e,
        );
        const fix = `fix: make ${MISSING} part of the closure (e.g. build the script with its interpreter as a dependency), or point command at a program`;
        assert.equal(
          error?.details,
          runtime === 'bwrap'
            ? `failed to launch task: bubblewrap set up the sandbox but could not execute the command ${path}/bin/app (its "#!" interpreter ${MISSING} is not in the task's closure): bwrap exited with code 1; ${fix}`
            : `failed to launch task: the command ${path}/bin/app cannot be executed in the container: its "#!" interpreter ${MISSING} is not in the task's closure; ${fix}`,
        );
        await assert.rejects(call(plugin.clients.driver, 'InspectTask', { task_id: task.id }), /task not found for given id/);
        assert.deepEqual(leftovers(sandbox), []);
      } finally {
        plugin.kill('SIGKILL');
        sandbox.remove();
      }
    });

    if (runtime === 'bwrap') {
      it("a store view the task user cannot reach fails StartTask with bwrap's own message, not the cgroup hand-off's", async () => {
        const path = buildWithBusybox('unreachable-view', 'mkdir -p $out/bin && ln -s $busybox/bin/sh $out/bin/sh');
        const sandbox = taskSandbox();
        const plugin = await startPlugin();
        try {
          await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
          const first = sandboxTask(sandbox, path, 'bin/sh', ['-c', 'sleep 60']);
          await call(plugin.clients.driver, 'StartTask', { task: first }, 60_000);
          const [key] = readdirSync(join(sandbox.stateDir, 'views')).filter((n) => /^[0-9a-f]{32}$/.test(n));
          // the running task keeps its bind; a new sandbox's setup, as the task user, cannot reach the view
          chmodSync(join(sandbox.stateDir, 'views'), 0o700);
          const second = sandboxTask(sandbox, path, 'bin/sh', ['-c', 'echo never']);
          const error = await call(plugin.clients.driver, 'StartTask', { task: second }, 60_000).then(
            () => undefined,
            (e: grpc.ServiceError) => e,
          );
          assert.equal(
            error?.details,
            `failed to launch task: bubblewrap exited with code 1 while setting up the sandbox, before the command ran: bwrap: Can't find source path ${join(sandbox.stateDir, 'views', key ?? '')}: Permission denied; fix: check the task's closure and the plugin's state_dir; bubblewrap's message is also the first line of the task's stderr log`,
          );
          chmodSync(join(sandbox.stateDir, 'views'), 0o711);
          await call(plugin.clients.driver, 'DestroyTask', { task_id: first.id, force: true }, 60_000);
          assert.deepEqual(leftovers(sandbox), []);
        } finally {
          plugin.kill('SIGKILL');
          sandbox.remove();
        }
      });

      it('a program bwrap cannot execute (its ELF loader is not in the sandbox) fails StartTask instead of exiting 1', async () => {
        const path = dynamicProgram();
        const sandbox = taskSandbox();
        const plugin = await startPlugin();
        try {
          await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
          const task = sandboxTask(sandbox, path, 'bin/true', []);
          const error = await call(plugin.clients.driver, 'StartTask', { task }, 60_000).then(
            () => undefined,
            (e: grpc.ServiceError) => e,
          );
          assert.equal(
            error?.details,
            `failed to launch task: bubblewrap set up the sandbox but could not execute the command ${path}/bin/true: bwrap exited with code 1; fix: check the task's closure and the plugin's state_dir; bubblewrap's message is also the first line of the task's stderr log`,
          );
          assert.deepEqual(leftovers(sandbox), []);
        } finally {
          plugin.kill('SIGKILL');
          sandbox.remove();
        }
      });
    }
  });
}

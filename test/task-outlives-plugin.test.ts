/**
 * A task must outlive its plugin, and its exit code must be on disk when the plugin is gone
 * (Nomad restarts a crashed plugin and recovers the task from that): per runtime, start a task,
 * SIGKILL the plugin, and read the code the runtime's monitor wrote — bwrap's status file or
 * the runc monitor's exit.json.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { busyboxPath } from './support/nix-fixtures.js';
import { call, startPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, stateKey, taskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;

const EXIT_RECORD = {
  bwrap: { file: 'bwrap-status.json', pattern: /"exit-code"\s*:\s*5\b/ },
  runc: { file: 'exit.json', pattern: /^\{"exit-code": 5\}$/m },
} as const;

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const runtime of ['bwrap', 'runc'] as const) {
  describe(`a ${runtime} task outlives a SIGKILLed plugin`, { skip: isRoot ? false : 'needs root' }, () => {
    it('keeps running, writes its logs, and its exit code 5 is on disk afterwards', async () => {
      const sandbox = taskSandbox();
      const plugin = await startPlugin();
      try {
        await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
        const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', 'echo before; sleep 2; echo after; exit 5']);
        const started = await call<unknown, { handle: { driver_state: Buffer } }>(plugin.clients.driver, 'StartTask', { task });
        const state = JSON.parse(Buffer.from(started.handle.driver_state).toString('utf8')) as { initPid: number };
        plugin.kill('SIGKILL');
        await plugin.exited;
        assert.ok(alive(state.initPid), 'the task survives its plugin');
        const record = join(sandbox.stateDir, 'tasks', stateKey(task.id), EXIT_RECORD[runtime].file);
        const text = await waitFor('the exit code on disk', () => {
          try {
            const content = readFileSync(record, 'utf8');
            return EXIT_RECORD[runtime].pattern.test(content) ? content : undefined;
          } catch {
            return undefined;
          }
        });
        assert.match(text, EXIT_RECORD[runtime].pattern);
        assert.equal(readFileSync(join(sandbox.allocDir, 'stdout'), 'utf8'), 'before\nafter\n');
        await waitFor('the task to be gone', () => (alive(state.initPid) ? undefined : true));

        // a new plugin process recovers the exited task from driver_state alone: exit code 5
        const next = await startPlugin();
        try {
          await call(next.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
          const handle = {
            version: 1,
            config: { ...task, msgpack_driver_config: Buffer.alloc(0) },
            state: 'RUNNING',
            driver_state: started.handle.driver_state,
          };
          await call(next.clients.driver, 'RecoverTask', { task_id: task.id, handle });
          await call(next.clients.driver, 'RecoverTask', { task_id: task.id, handle }); // known: a no-op
          const waited = await call<unknown, { result: { exit_code: number } }>(next.clients.driver, 'WaitTask', { task_id: task.id });
          assert.equal(waited.result.exit_code, 5);
          await call(next.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
          assert.ok(!existsSync(join(sandbox.stateDir, 'tasks', stateKey(task.id))), 'state dir removed');
          assert.deepEqual(readdirSync(sandbox.gcRoots), [], 'GC root removed');
          // a task that is gone and left no exit record cannot be recovered, and is swept
          await assert.rejects(
            call(next.clients.driver, 'RecoverTask', { task_id: 'gone/main/x', handle: { ...handle, config: { ...handle.config, id: 'gone/main/x' } } }),
            /driver_state field taskId .* does not belong to task "gone\/main\/x"/,
          );
        } finally {
          next.kill('SIGKILL');
        }
      } finally {
        plugin.kill('SIGKILL');
        sandbox.remove();
      }
    });
  });
}

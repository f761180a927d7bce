/**
 * Tasks of one closure share its store view and generated /etc dir (driver/shared-resources.ts):
 * a start that fails after the view was made (a command not in the closure) must not remove
 * the view a concurrent good start of the same closure is about to bind. Through the real
 * plugin socket, per runtime: each round a never-seen closure, five failing starts beside one
 * good one at once; the good one runs and prints its line, the five fail with the command's
 * error, and after DestroyTask nothing is left (views, /etc dirs, state dirs, GC roots).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { buildWithBusybox } from './support/nix-fixtures.js';
import { call, startPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;
const ROUNDS = Number(process.env.SHARED_CLOSURE_ROUNDS ?? 8);

for (const runtime of ['bwrap', 'runc'] as const) {
  describe(`five failing starts beside one good start of one closure (${runtime})`, { skip: isRoot ? false : 'needs root', timeout: 600_000 }, () => {
    it(`the good task runs and nothing is left, ${ROUNDS} rounds with a never-seen closure each`, async () => {
      const sandbox = taskSandbox();
      const plugin = await startPlugin();
      const failures: string[] = [];
      try {
        await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime }) });
        const salt = `${process.pid}-${Date.now()}`;
        for (let round = 0; round < ROUNDS; round += 1) {
          const path = buildWithBusybox(`shared-${runtime}-${salt}-${round}`, 'mkdir -p $out/bin && ln -s $busybox/bin/sh $out/bin/sh');
          writeFileSync(join(sandbox.allocDir, 'stdout'), '');
          const good = sandboxTask(sandbox, path, 'bin/sh', ['-c', `echo line-${round}; exit 0`]);
          const bad = [1, 2, 3, 4, 5].map(() => sandboxTask(sandbox, path, 'bin/missing', []));
          const results = await Promise.allSettled([good, ...bad].map((task) => call(plugin.clients.driver, 'StartTask', { task }, 120_000)));
          const [goodResult, ...badResults] = results;
          for (const result of badResults) {
            assert.equal(result.status, 'rejected');
            assert.equal(
              (result.reason as grpc.ServiceError).details,
              `failed to validate task config: command "bin/missing" (${path}/bin/missing) is not an executable file; fix: check the program's name in ${path}`,
            );
          }
          if (goodResult?.status === 'rejected') {
            failures.push(`round ${round}: the good start failed: ${(goodResult.reason as grpc.ServiceError).details}`);
          } else {
            const waited = await call<unknown, { result: { exit_code: number } }>(plugin.clients.driver, 'WaitTask', { task_id: good.id }, 60_000);
            const stdout = readFileSync(join(sandbox.allocDir, 'stdout'), 'utf8');
            if (waited.result.exit_code !== 0 || stdout !== `line-${round}\n`) {
              failures.push(
                `round ${round}: the good task exited ${waited.result.exit_code} with stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(readFileSync(join(sandbox.allocDir, 'stderr'), 'utf8'))}`,
              );
            }
            await call(plugin.clients.driver, 'DestroyTask', { task_id: good.id, force: true }, 60_000);
          }
          const left = [
            ...readdirSync(join(sandbox.stateDir, 'views')).map((n) => `views/${n}`),
            ...readdirSync(join(sandbox.stateDir, 'etc')).map((n) => `etc/${n}`),
            ...readdirSync(join(sandbox.stateDir, 'tasks')).map((n) => `tasks/${n}`),
            ...readdirSync(sandbox.gcRoots).map((n) => `gc root ${n}`),
          ];
          assert.deepEqual(left, [], `round ${round}: left behind`);
        }
        assert.deepEqual(failures, []);
      } finally {
        plugin.kill('SIGKILL');
        sandbox.remove();
      }
    });
  });
}

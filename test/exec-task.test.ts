/**
 * ExecTask at the driver level, per runtime, through the real plugin process: what Nomad's
 * script checks and template change scripts get (Nomad 1.11 runs script checks only with
 * Consul, so the e2e suite reaches ExecTask through change scripts; this covers the rest):
 * output and exit code with `result` always set, a missing program as exit 127, a timeout
 * as DEADLINE_EXCEEDED with nothing left running, an exited task, and root tasks.
 */
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from './support/nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox, type TaskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;

interface ExecResponse {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  readonly result: { exit_code: number; signal: number; oom_killed: boolean } | null;
}

const text = (r: ExecResponse) => ({ stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString(), result: r.result });
const alive = (pattern: string) => spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).stdout.trim() !== '';

for (const runtime of ['bwrap', 'runc'] as const) {
  describe(`ExecTask into a ${runtime} task`, { skip: isRoot ? false : 'needs root' }, () => {
    let sandbox: TaskSandbox;
    let plugin: RunningPlugin;
    let taskId: string;
    const exec = (command: string[], seconds = 10) =>
      call<unknown, ExecResponse>(plugin.clients.driver, 'ExecTask', { task_id: taskId, command, timeout: { seconds } }, 30_000);

    before(async () => {
      sandbox = taskSandbox();
      plugin = await startPlugin();
      await call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime, allow_root: true }) });
      const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', 'echo started; exec sleep 3600']);
      taskId = task.id;
      await call(plugin.clients.driver, 'StartTask', { task });
    });

    after(async () => {
      await call(plugin.clients.driver, 'DestroyTask', { task_id: taskId, force: true }).catch(() => undefined);
      plugin.kill('SIGKILL');
      sandbox.remove();
    });

    it('returns stdout, stderr and the exit code, as the task user in its cwd with its environment', async () => {
      const response = await exec(['sh', '-c', 'id -u; pwd; echo $NOMAD_TASK_NAME; ls /nix/store; echo oops >&2; exit 4']);
      assert.deepEqual(text(response), {
        stdout: `65534\n/local\nmain\n${busyboxPath().slice('/nix/store/'.length)}\n`,
        stderr: 'oops\n',
        result: { exit_code: 4, signal: 0, oom_killed: false },
      });
    });

    it('a program that is not in the task is exit 127 with the reason on stderr, and result is set', async () => {
      const response = text(await exec(['vim', 'x']));
      assert.deepEqual(response.result, { exit_code: 127, signal: 0, oom_killed: false });
      assert.equal(response.stdout, '');
      assert.match(response.stderr, /^failed to exec in task: command "vim" is not in the task's PATH \(\/nix\/store\/[^)]+-busybox\/bin\); fix: /);
    });

    it('a timeout fails with DEADLINE_EXCEEDED and kills what the command started', async () => {
      const marker = `sleep ${100_000 + randomInt(800_000)}`;
      const started = Date.now();
      await assert.rejects(exec(['sh', '-c', `${marker} & ${marker}`], 1), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
        assert.match(
          e.details,
          /^failed to exec in task: "sh -c sleep \d+ & sleep \d+" ran longer than its timeout of 1000 ms; its processes were killed; fix: /,
        );
        return true;
      });
      assert.ok(Date.now() - started < 5_000);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(alive(marker), false, 'no process of the timed-out command is left');
    });

    it("a root task's command runs as root with the task's capabilities (runc) or is refused (bwrap)", async () => {
      const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', 'exec sleep 3600']);
      await call(plugin.clients.driver, 'StartTask', { task: { ...task, user: 'root' } });
      try {
        const request = {
          task_id: task.id,
          command: ['sh', '-c', 'id -u; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status'],
          timeout: { seconds: 10 },
        };
        if (runtime === 'runc') {
          const response = text(await call<unknown, ExecResponse>(plugin.clients.driver, 'ExecTask', request, 30_000));
          // Nomad's default set for root tasks (driver/privileges.ts), no_new_privs, the seccomp filter
          assert.deepEqual(response.stdout.split('\n'), ['0', 'CapEff:\t00000000a80405fb', 'NoNewPrivs:\t1', 'Seccomp:\t2', '']);
        } else {
          await assert.rejects(call(plugin.clients.driver, 'ExecTask', request, 30_000), (e: grpc.ServiceError) => {
            assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
            assert.match(
              e.details,
              /^failed to exec in task: the task runs as root under bubblewrap, .*; fix: run root tasks you exec into with runtime = "runc"/,
            );
            return true;
          });
        }
      } finally {
        await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
      }
    });

    it('an exited task refuses with FAILED_PRECONDITION', async () => {
      const task = sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', 'exit 0']);
      await call(plugin.clients.driver, 'StartTask', { task });
      await call(plugin.clients.driver, 'WaitTask', { task_id: task.id });
      await assert.rejects(call(plugin.clients.driver, 'ExecTask', { task_id: task.id, command: ['true'] }), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
        assert.equal(e.details, 'failed to exec in task: the task has exited');
        return true;
      });
      await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
    });
  });
}

/**
 * Volumes and devices at the driver level, through the real plugin process and both runtimes:
 * TaskConfig.mounts and .devices as Nomad sends them, without a Nomad agent. (Volumes also run
 * through a real agent in e2e/volumes-caps.test.ts; devices cannot: only a device plugin that
 * reserves device nodes puts them into TaskConfig.devices, and Nomad ships none for -dev.)
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busyboxPath } from './support/nix-fixtures.js';
import { call, startPlugin, type RunningPlugin } from './support/plugin-process.js';
import { sandboxPluginConfig, sandboxTask, taskSandbox, type TaskSandbox } from './support/task-sandbox.js';

const isRoot = process.getuid?.() === 0;

type Task = ReturnType<typeof sandboxTask> & Record<string, unknown>;

for (const runtime of ['bwrap', 'runc'] as const) {
  describe(`mounts and devices (${runtime})`, { skip: isRoot ? false : 'needs root' }, () => {
    let sandbox: TaskSandbox;
    let plugin: RunningPlugin;
    let volumes: string;

    const configure = (values: Record<string, unknown> = {}) =>
      call(plugin.clients.base, 'SetConfig', { msgpack_config: sandboxPluginConfig(sandbox, { runtime, allow_root: true, ...values }) });

    /** Starts `script` under busybox sh with `extra` TaskConfig fields; resolves with its exit code and stdout. */
    async function run(script: string, extra: Record<string, unknown>): Promise<{ exitCode: number; stdout: string }> {
      writeFileSync(join(sandbox.allocDir, 'stdout'), '');
      const task: Task = { ...sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', script]), ...extra };
      await call(plugin.clients.driver, 'StartTask', { task });
      try {
        const waited = await call<unknown, { result: { exit_code: number } }>(plugin.clients.driver, 'WaitTask', { task_id: task.id }, 30_000);
        return { exitCode: waited.result.exit_code, stdout: readFileSync(join(sandbox.allocDir, 'stdout'), 'utf8') };
      } finally {
        await call(plugin.clients.driver, 'DestroyTask', { task_id: task.id, force: true });
      }
    }

    async function startFails(extra: Record<string, unknown>): Promise<string> {
      const task: Task = { ...sandboxTask(sandbox, busyboxPath(), 'bin/sh', ['-c', 'true']), ...extra };
      const error = await call(plugin.clients.driver, 'StartTask', { task }).then(
        () => assert.fail('StartTask should fail'),
        (e: Error) => e,
      );
      return error.message;
    }

    before(async () => {
      sandbox = taskSandbox();
      plugin = await startPlugin();
      volumes = mkdtempSync('/var/lib/nix-volumes-');
      chmodSync(volumes, 0o755);
      for (const name of ['rw', 'ro']) {
        mkdirSync(join(volumes, name), { mode: 0o777 });
        chmodSync(join(volumes, name), 0o777);
      }
      writeFileSync(join(volumes, 'ro', 'seed'), 'seeded\n', { mode: 0o644 });
      await configure();
    });

    after(() => {
      plugin?.kill('SIGKILL');
      sandbox?.remove();
      if (volumes !== undefined) rmSync(volumes, { recursive: true, force: true });
    });

    it('binds a volume read-write and one read-only, as the unprivileged default user', async () => {
      const { exitCode, stdout } = await run(
        'id -u; echo written > /data/out && echo RW-OK; cat /ro/seed; echo x > /ro/new 2>/dev/null && echo RO-WRITTEN || echo RO-REFUSED',
        {
          mounts: [
            { task_path: '/data', host_path: join(volumes, 'rw'), readonly: false, propagation_mode: 'private' },
            { task_path: '/ro', host_path: join(volumes, 'ro'), readonly: true, propagation_mode: '' },
          ],
        },
      );
      assert.equal(exitCode, 0, stdout);
      assert.equal(stdout, '65534\nRW-OK\nseeded\nRO-REFUSED\n');
      assert.equal(readFileSync(join(volumes, 'rw', 'out'), 'utf8'), 'written\n');
      assert.ok(!existsSync(join(volumes, 'ro', 'new')));
    });

    it('binds a host device node; runc allows it only with the cgroup permissions Nomad granted', async () => {
      const script =
        'stat -c "%F %t:%T" /dev/fuse; (exec 3</dev/fuse) 2>/dev/null && echo READ-OK || echo READ-DENIED; (exec 4>/dev/fuse) 2>/dev/null && echo WRITE-OK || echo WRITE-DENIED';
      const device = (permissions: string) => ({
        user: 'root',
        devices: [{ task_path: '/dev/fuse', host_path: '/dev/fuse', cgroup_permissions: permissions }],
      });
      const readOnly = await run(script, device('r'));
      assert.equal(readOnly.exitCode, 0, readOnly.stdout);
      // bwrap has no device cgroup: the node's own mode decides (root may write it)
      assert.equal(readOnly.stdout, `character special file a:e5\nREAD-OK\n${runtime === 'runc' ? 'WRITE-DENIED' : 'WRITE-OK'}\n`);
      const readWrite = await run(script, device('rw'));
      assert.equal(readWrite.stdout, 'character special file a:e5\nREAD-OK\nWRITE-OK\n');
      const absent = await run('test -e /dev/fuse && echo PRESENT || echo ABSENT', { user: 'root' });
      assert.equal(absent.stdout, 'ABSENT\n');
    });

    it("refuses a device that is not a device node, and one over the runtime's /dev/null", async () => {
      assert.match(
        await startFails({ devices: [{ task_path: '/dev/x', host_path: '/dev/shm', cgroup_permissions: 'rw' }] }),
        /failed to bind device: device "\/dev\/shm" for "\/dev\/x" is not a character or block device \(\/dev\/shm\); fix: /,
      );
      assert.match(
        await startFails({ devices: [{ task_path: '/dev/null', host_path: '/dev/fuse', cgroup_permissions: 'rw' }] }),
        /failed to start task: devices\[0\]\.target "\/dev\/null" would replace the runtime's \/dev\/null/,
      );
    });

    it("refuses a volume inside the plugin's state_dir or the store, and a missing one", async () => {
      const mount = (host_path: string) => ({ mounts: [{ task_path: '/data', host_path, readonly: false, propagation_mode: 'private' }] });
      assert.match(
        await startFails(mount(join(sandbox.stateDir, 'tasks'))),
        /failed to start task: extraMounts\[0\]\.source ".*\/tasks" lies inside \/var\/lib\/nix-task-state-\w+, which no task may see/,
      );
      assert.match(await startFails(mount(busyboxPath())), /lies inside \/nix\/store, which no task may see/);
      assert.match(
        await startFails(mount('/nonexistent/volume')),
        /failed to mount volume: the volume_mount at "\/data" \(host path "\/nonexistent\/volume"\) does not exist on this client/,
      );
    });

    it('refuses bidirectional propagation, and every mount when allow_volumes is off', async () => {
      const mounts = (propagation_mode: string) => ({ mounts: [{ task_path: '/data', host_path: join(volumes, 'rw'), readonly: false, propagation_mode }] });
      assert.match(await startFails(mounts('bidirectional')), /has propagation_mode "bidirectional", which this driver does not support/);
      await configure({ allow_volumes: false });
      try {
        assert.match(await startFails(mounts('private')), /is not allowed: the plugin config sets allow_volumes = false; fix: .*set allow_volumes = true/);
      } finally {
        await configure();
      }
    });

    if (runtime === 'bwrap') {
      it('refuses a volume the task user cannot reach, naming the directory and the fix', async () => {
        const hidden = join(volumes, 'hidden');
        mkdirSync(join(hidden, 'data'), { recursive: true, mode: 0o777 });
        chmodSync(hidden, 0o700);
        assert.match(
          await startFails({ mounts: [{ task_path: '/data', host_path: join(hidden, 'data'), readonly: false, propagation_mode: 'private' }] }),
          new RegExp(
            `failed to mount volume: user "nobody" \\(uid 65534\\) cannot reach the volume ${hidden}/data for "/data": ${hidden} has mode 0700; fix: `,
          ),
        );
      });
    }
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateOciConfig } from '../../../test/support/oci-schema.js';
import { planRoot } from '../../rootfs/plan.js';
import type { ExecSpec } from '../runtime.js';
import { execArgs, renderExecProcess } from './exec.js';
import { renderOciConfig } from './oci-config.js';

const SPEC: ExecSpec = {
  argv: ['/nix/store/abc-busybox/bin/sh', '-c', 'id -u'],
  env: { PATH: '/nix/store/abc-busybox/bin', HOME: '/local', NOMAD_TASK_NAME: 'web' },
  cwd: '/local',
  uid: 65534,
  gid: 65534,
  capabilities: [],
  tty: true,
  cgroupProcsFiles: ['/sys/fs/cgroup/memory/nomad/a1.web/cgroup.procs'],
};

describe('renderExecProcess', () => {
  it('gives runc exec the task user, no capabilities, no_new_privs and the terminal flag', () => {
    assert.deepEqual(renderExecProcess(SPEC), {
      terminal: true,
      user: { uid: 65534, gid: 65534 },
      args: ['/nix/store/abc-busybox/bin/sh', '-c', 'id -u'],
      env: ['HOME=/local', 'NOMAD_TASK_NAME=web', 'PATH=/nix/store/abc-busybox/bin'],
      cwd: '/local',
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      noNewPrivileges: true,
    });
  });

  it("gives a root task's command the task's capability set, as its config.json does", () => {
    const caps = ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'];
    const process = renderExecProcess({ ...SPEC, uid: 0, gid: 0, tty: false, capabilities: caps });
    assert.deepEqual(process.capabilities, { bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: [] });
    const plan = planRoot({ storeView: '/var/lib/v', allocDir: '/opt/nomad/alloc/a1', taskName: 'web', etcDir: '/var/lib/e' });
    const task = renderOciConfig(
      plan,
      { ...SPEC, uid: 0, gid: 0, capabilities: caps },
      { initPath: '/usr/bin/tini-static', cgroupsPath: '/nomad/a1.web', arch: 'x64' },
    );
    assert.deepEqual(process.capabilities, task.config.process.capabilities);
    // a config with this process is still a valid runtime-spec config
    const result = validateOciConfig({ ...task.config, process });
    assert.deepEqual(result.errors, []);
  });

  it('validates the spec like a task process', () => {
    assert.throws(() => renderExecProcess({ ...SPEC, cwd: 'local' }), {
      code: 'invalid_argument',
      message: /^failed to exec in task: cwd "local" is not an absolute path/,
    });
  });
});

describe('execArgs', () => {
  it('runs runc exec in the foreground with the process file', () => {
    assert.deepEqual(execArgs('/var/lib/nix/runc', '/var/lib/nix/tasks/t/exec-1.json', 't'), [
      '--root',
      '/var/lib/nix/runc',
      'exec',
      '--process',
      '/var/lib/nix/tasks/t/exec-1.json',
      't',
    ]);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExecutableKind } from '../host/which.js';
import type { ProcessSpec } from '../runtime/runtime.js';
import { execEnvironment, planExec, resolveExecCommand } from './exec-task.js';

const BB = '/nix/store/abc-busybox/bin';
const APP = '/nix/store/def-app/bin';

/** A task root holding these files (path → kind); anything else is missing. */
const root =
  (files: Record<string, ExecutableKind>) =>
  (path: string): ExecutableKind =>
    files[path] ?? 'missing';

const FILES = root({
  [`${BB}/sh`]: 'executable',
  [`${APP}/sh`]: 'executable',
  [`${APP}/README`]: 'not-executable',
  [`${BB}/README`]: 'missing',
  '/local/run.sh': 'executable',
  '/local/data': 'not-executable',
});

const LAUNCHED: ProcessSpec = {
  argv: [`${APP}/web`],
  env: { PATH: `${BB}:${APP}`, NOMAD_TASK_NAME: 'web' },
  cwd: '/local',
  uid: 65534,
  gid: 65534,
  hostname: 'node-1',
  capabilities: [],
};

describe('resolveExecCommand', () => {
  it('finds a name in the first PATH directory that has it, as a shell does', () => {
    assert.deepEqual(resolveExecCommand('sh', `${BB}:${APP}`, '/local', FILES), { found: true, path: `${BB}/sh` });
    assert.deepEqual(resolveExecCommand('sh', `${APP}:${BB}`, '/local', FILES), { found: true, path: `${APP}/sh` });
  });

  it('resolves a path with a slash against the cwd, or as given', () => {
    assert.deepEqual(resolveExecCommand('./run.sh', BB, '/local', FILES), { found: true, path: '/local/run.sh' });
    assert.deepEqual(resolveExecCommand('../local/./run.sh', BB, '/local', FILES), { found: true, path: '/local/run.sh' });
    assert.deepEqual(resolveExecCommand(`${BB}/sh`, '', '/tmp', FILES), { found: true, path: `${BB}/sh` });
  });

  it('an empty PATH entry means the cwd; relative entries are skipped', () => {
    assert.deepEqual(resolveExecCommand('run.sh', `${BB}:`, '/local', FILES), { found: true, path: '/local/run.sh' });
    assert.equal(resolveExecCommand('run.sh', `${BB}:local`, '/', FILES).found, false);
  });

  it('a missing program is exit 127 with the PATH and a fix', () => {
    assert.deepEqual(resolveExecCommand('vim', `${BB}:${APP}`, '/local', FILES), {
      found: false,
      exitCode: 127,
      message: `failed to exec in task: command "vim" is not in the task's PATH (${BB}:${APP}); fix: run a program of the task's closure (its bin directories are the PATH), add the package that provides it to the task's packages, or give its absolute path\n`,
    });
    assert.deepEqual(resolveExecCommand('/bin/bash', BB, '/local', FILES), {
      found: false,
      exitCode: 127,
      message:
        'failed to exec in task: "/bin/bash" does not exist in the task; fix: check the path; the task\'s root holds its closure, /alloc, /local, /secrets and /tmp\n',
    });
  });

  it('a file that is not executable is exit 126', () => {
    const result = resolveExecCommand('README', `${BB}:${APP}`, '/local', FILES);
    assert.deepEqual(result, {
      found: false,
      exitCode: 126,
      message: `failed to exec in task: ${APP}/README is not an executable file; fix: name an executable program\n`,
    });
    assert.equal((resolveExecCommand('./data', BB, '/local', FILES) as { exitCode: number }).exitCode, 126);
  });
});

describe('execEnvironment', () => {
  it("is the environment the task's command process has, else the launch environment", () => {
    assert.deepEqual(execEnvironment({ PATH: BB, HOME: '/local' }, LAUNCHED.env, false), { PATH: BB, HOME: '/local' });
    assert.deepEqual(execEnvironment(undefined, LAUNCHED.env, false), LAUNCHED.env);
  });

  it('adds TERM=xterm for a terminal when the task has no TERM', () => {
    assert.equal(execEnvironment({ PATH: BB }, {}, true).TERM, 'xterm');
    assert.equal(execEnvironment({ PATH: BB, TERM: 'vt100' }, {}, true).TERM, 'vt100');
    assert.equal(execEnvironment({ PATH: BB }, {}, false).TERM, undefined);
  });
});

describe('planExec', () => {
  const input = {
    command: ['sh', '-c', 'id -u'],
    tty: false,
    launched: LAUNCHED,
    environ: { PATH: `${APP}:${BB}`, X: '1' },
    cgroupProcsFiles: ['/sys/fs/cgroup/pids/t/cgroup.procs'],
  };

  it("runs Nomad's command as the task user, in its cwd, with the command process's environment and PATH", () => {
    assert.deepEqual(planExec(input, FILES), {
      spec: {
        argv: [`${APP}/sh`, '-c', 'id -u'],
        env: { PATH: `${APP}:${BB}`, X: '1' },
        cwd: '/local',
        uid: 65534,
        gid: 65534,
        capabilities: [],
        tty: false,
        cgroupProcsFiles: ['/sys/fs/cgroup/pids/t/cgroup.procs'],
      },
    });
  });

  it('reports a missing program instead of running anything', () => {
    const result = planExec({ ...input, command: ['bash'] }, FILES);
    assert.ok('failed' in result);
    assert.equal(result.failed.exitCode, 127);
  });

  it('refuses an empty command', () => {
    assert.throws(() => planExec({ ...input, command: [] }, FILES), { code: 'invalid_argument', message: /^failed to exec in task: the command is empty/ });
    assert.throws(() => planExec({ ...input, command: [''] }, FILES), { code: 'invalid_argument' });
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ExecSpec } from '../runtime.js';
import { JOIN_CGROUP_SCRIPT, SANE_TERMINAL, TERMINAL_SCRIPT, helperSpec, renderBwrapExec, shellQuote, type BwrapExecTools } from './exec.js';

const TOOLS: BwrapExecTools = {
  sh: '/bin/sh',
  helper: '/opt/driver/dist/native/nix-exec',
  setpriv: '/usr/bin/setpriv',
  nsenter: '/usr/bin/nsenter',
  unshare: '/usr/bin/unshare',
  script: '/usr/bin/script',
};

const SPEC: ExecSpec = {
  argv: ['/nix/store/abc-busybox/bin/sh', '-c', 'echo hi; exit 4'],
  env: { PATH: '/nix/store/abc-busybox/bin', NOMAD_TASK_NAME: 'web' },
  cwd: '/local',
  uid: 65534,
  gid: 65534,
  capabilities: [],
  tty: false,
  cgroupProcsFiles: ['/sys/fs/cgroup/memory/nomad/a1.web/cgroup.procs', '/sys/fs/cgroup/pids/nomad/a1.web/cgroup.procs'],
};

const SPEC_FILE = '/var/lib/nix-driver/tasks/a1-web/exec-0123456789ab.spec';

const INNER = [
  '/bin/sh',
  '-c',
  JOIN_CGROUP_SCRIPT,
  'nix-exec',
  '0', // the command's oom_score_adj floor: the task's
  '/opt/driver/dist/native/nix-exec',
  SPEC_FILE,
  '2',
  '/sys/fs/cgroup/memory/nomad/a1.web/cgroup.procs',
  '/sys/fs/cgroup/pids/nomad/a1.web/cgroup.procs',
  '/usr/bin/setpriv',
  '--no-new-privs',
  '/usr/bin/nsenter',
  '--target',
  '4242',
  '--user',
  '--mount',
  '--uts',
  '--ipc',
  '--net',
  '--pid',
  '--cgroup',
  '--root',
  '--wd=/proc/4242/root',
  '--setuid',
  '65534',
  '--setgid',
  '65534',
  // inside the task: the helper (fd 3), reading its spec from fd 4
  '--',
  '/proc/self/fd/3',
  '4',
];

describe('renderBwrapExec', () => {
  it('joins the cgroup, then enters every namespace of the task as its user; the helper sets its environment inside', () => {
    assert.deepEqual(renderBwrapExec(4242, SPEC, TOOLS, SPEC_FILE), { file: '/bin/sh', args: INNER.slice(1), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  });

  it('gives no task variable, argument or path to a host process: env fixed, cwd, environment and command only in the spec', () => {
    const spec: ExecSpec = {
      ...SPEC,
      env: { PATH: '/nix/store/abc-busybox/bin', LD_PRELOAD: '/local/evil.so', LD_LIBRARY_PATH: '/local' },
      cwd: '/local/wd',
    };
    const terminal = renderBwrapExec(4242, { ...spec, tty: true }, TOOLS, SPEC_FILE);
    assert.deepEqual(terminal.env, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', SHELL: '/bin/sh' });
    const command = renderBwrapExec(4242, spec, TOOLS, SPEC_FILE);
    assert.deepEqual(command.env, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
    for (const argv of [
      [command.file, ...command.args],
      [terminal.file, ...terminal.args],
    ]) {
      assert.ok(!argv.some((arg) => arg.includes('LD_') || arg.includes('/local') || arg.includes('echo hi')), `host-side argv: ${argv.join(' ')}`);
      assert.ok(
        argv.some((arg) => arg.includes('--wd=/proc/4242/root')),
        'nsenter changes to the task root itself, no path below it',
      );
    }
    assert.equal(
      helperSpec(spec),
      ['/local/wd', '3', 'LD_LIBRARY_PATH=/local', 'LD_PRELOAD=/local/evil.so', 'PATH=/nix/store/abc-busybox/bin', ...SPEC.argv].map((f) => `${f}\0`).join(''),
    );
  });

  it('runs a terminal command under script in a private mount namespace whose /dev leads into the task', () => {
    const command = renderBwrapExec(4242, { ...SPEC, tty: true }, TOOLS, SPEC_FILE);
    assert.equal(command.file, '/usr/bin/unshare');
    assert.deepEqual(command.args.slice(0, 9), ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', TERMINAL_SCRIPT, 'nix-exec-tty', '4242']);
    assert.equal(command.args[9], '/usr/bin/script');
    assert.deepEqual(command.env, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', SHELL: '/bin/sh' });
    // the command line script hands to $SHELL -c is the same command, with a sane terminal first
    const line = command.args[10] ?? '';
    const words = spawnSync('/bin/sh', ['-c', `for w in ${line}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8' })
      .stdout.split('\0')
      .slice(0, -1);
    assert.deepEqual(words, [...INNER.slice(0, 2), `${SANE_TERMINAL}\n${JOIN_CGROUP_SCRIPT}`, ...INNER.slice(3)]);
  });

  it("refuses a root task: nothing could hold a joining process to the task's capabilities", () => {
    assert.throws(() => renderBwrapExec(4242, { ...SPEC, uid: 0, gid: 0 }, TOOLS, SPEC_FILE), {
      name: 'DriverError',
      code: 'failed_precondition',
      message: /^failed to exec in task: the task runs as root under bubblewrap, .*; fix: run root tasks you exec into with runtime = "runc"/,
    });
  });

  it('validates the spec like a task process', () => {
    assert.throws(() => renderBwrapExec(4242, { ...SPEC, argv: ['sh'] }, TOOLS, SPEC_FILE), {
      code: 'invalid_argument',
      message: 'failed to exec in task: argv[0] "sh" is not an absolute path; fix: resolve the command to an absolute path inside the task root',
    });
    assert.throws(() => renderBwrapExec(0, SPEC, TOOLS, SPEC_FILE), { code: 'internal' });
  });
});

describe('shellQuote', () => {
  it('gives words a POSIX shell reads back unchanged', () => {
    const values = ['plain', '/nix/store/abc-x/bin/sh', '', "it's", 'a b', '$HOME `id` "q" \\ *', 'line\nbreak', '-c', 'é'];
    const line = values.map(shellQuote).join(' ');
    const out = spawnSync('/bin/sh', ['-c', `for w in ${line}; do printf '%s\\0' "$w"; done`], { encoding: 'utf8' }).stdout;
    assert.deepEqual(out.split('\0').slice(0, -1), values);
    assert.equal(shellQuote('PATH=/a:/b'), 'PATH=/a:/b');
  });
});

describe('JOIN_CGROUP_SCRIPT', () => {
  it('writes its own pid to every procs file, then becomes the command (same pid)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-join-'));
    try {
      const [a, b] = [join(dir, 'a'), join(dir, 'b')];
      writeFileSync(a, '');
      writeFileSync(b, '');
      const spec = join(dir, 'exec.spec');
      writeFileSync(spec, 'spec\0');
      const result = spawnSync(
        '/bin/sh',
        ['-c', JOIN_CGROUP_SCRIPT, 'nix-exec', '0', '/etc/hostname', spec, '2', a, b, '/bin/sh', '-c', 'echo $$; readlink /proc/self/fd/3; cat <&4'],
        { encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr);
      const [pid, fd3, fd4] = result.stdout.trim().split('\n');
      assert.equal(fd3, '/etc/hostname', 'the helper is open as fd 3');
      assert.equal(fd4, 'spec\0', 'the spec is open as fd 4');
      assert.equal(existsSync(spec), false, 'the spec file is removed once open');
      assert.equal(readFileSync(a, 'utf8').trim(), pid);
      assert.equal(readFileSync(b, 'utf8').trim(), pid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("raises the command's oom_score_adj to the floor, never lowers it (the plugin runs at -1000 under HashiCorp's unit)", (t) => {
    // this host refuses values below 0 even to root (no CAP_SYS_RESOURCE): 300 and 700 stand in
    // for the plugin's -1000 and the task's 0; the cgroups v2 guest checks the real values
    const dir = mkdtempSync(join(tmpdir(), 'nix-join-'));
    // the script removes its spec file once open: one per run, never a file of the host
    const adj = (start: number, floor: number) => {
      const spec = join(dir, `exec-${start}.spec`);
      writeFileSync(spec, 'spec\0');
      const args = ['-c', JOIN_CGROUP_SCRIPT, 'nix-exec', String(floor), '/bin/true', spec, '0', '/bin/cat', '/proc/self/oom_score_adj'];
      return spawnSync('choom', ['-n', String(start), '--', '/bin/sh', ...args], { encoding: 'utf8' });
    };
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const raised = adj(300, 700);
    assert.equal(raised.status, 0, raised.stderr);
    assert.equal(raised.stdout, '700\n');
    const kept = adj(800, 700);
    assert.equal(kept.status, 0, kept.stderr);
    assert.equal(kept.stdout, '800\n');
  });

  it('exits 125 with a message when a file cannot be written', () => {
    const result = spawnSync(
      '/bin/sh',
      ['-c', JOIN_CGROUP_SCRIPT, 'nix-exec', '0', '/etc/hostname', '/nonexistent/exec.spec', '1', '/nonexistent/cgroup.procs', '/bin/true'],
      { encoding: 'utf8' },
    );
    assert.equal(result.status, 125);
    assert.match(result.stderr, /failed to exec in task: cannot join the task cgroup through \/nonexistent\/cgroup.procs/);
  });

  it('exits 125 with a message when the helper cannot be opened', () => {
    const result = spawnSync('/bin/sh', ['-c', JOIN_CGROUP_SCRIPT, 'nix-exec', '0', '/nonexistent/nix-exec', '/nonexistent/exec.spec', '0', '/bin/true'], {
      encoding: 'utf8',
    });
    assert.equal(result.status, 125);
    assert.match(result.stderr, /failed to exec in task: cannot open \/nonexistent\/nix-exec or \/nonexistent\/exec.spec/);
  });
});

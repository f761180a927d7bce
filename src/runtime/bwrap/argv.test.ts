import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRoot } from '../../rootfs/plan.js';
import { renderBwrapArgs, splitArgsForFd, type BwrapOptions, type ProcessSpec } from './argv.js';

const PLAN = planRoot({
  storeView: '/var/lib/nix-driver/views/v1',
  allocDir: '/opt/nomad/alloc/a1',
  taskName: 'web',
  etcDir: '/var/lib/nix-driver/etc/a1-web',
});

const PROCESS: ProcessSpec = {
  argv: ['/nix/store/abc-web/bin/web', '-p', '8080'],
  env: { PATH: '/nix/store/abc-web/bin', NOMAD_TASK_NAME: 'web' },
  cwd: '/local',
  uid: 1000,
  gid: 1000,
  hostname: 'web-1',
  capabilities: [],
};

const USER: BwrapOptions = { statusFd: 3, shareNet: false, asRoot: false };

const MOUNTS = [
  '--ro-bind',
  '/var/lib/nix-driver/views/v1',
  '/nix/store',
  '--bind',
  '/opt/nomad/alloc/a1/alloc',
  '/alloc',
  '--bind',
  '/opt/nomad/alloc/a1/web/local',
  '/local',
  '--bind',
  '/opt/nomad/alloc/a1/web/secrets',
  '/secrets',
  '--ro-bind',
  '/var/lib/nix-driver/etc/a1-web',
  '/etc',
  '--proc',
  '/proc',
  '--dev',
  '/dev',
  '--tmpfs',
  '/tmp',
  '--remount-ro',
  '/',
];

const fails = (process: ProcessSpec, options: BwrapOptions, message: string) =>
  assert.throws(() => renderBwrapArgs(PLAN, process, options), { name: 'DriverError', code: 'invalid_argument', message });

describe('renderBwrapArgs', () => {
  it('renders an unprivileged task: user namespace, own network, cleared environment', () => {
    assert.deepEqual(renderBwrapArgs(PLAN, PROCESS, USER), [
      '--unshare-user',
      '--unshare-ipc',
      '--unshare-pid',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--unshare-net',
      '--new-session',
      '--clearenv',
      '--setenv',
      'NOMAD_TASK_NAME',
      'web',
      '--setenv',
      'PATH',
      '/nix/store/abc-web/bin',
      '--chdir',
      '/local',
      '--hostname',
      'web-1',
      '--json-status-fd',
      '3',
      ...MOUNTS,
      '--',
      '/nix/store/abc-web/bin/web',
      '-p',
      '8080',
    ]);
  });

  it('renders a root task sharing the network: no user namespace, every capability dropped but its own set', () => {
    const root = { ...PROCESS, uid: 0, gid: 0, env: {}, capabilities: ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'] };
    const { hostname: _, ...withoutHostname } = root;
    assert.deepEqual(renderBwrapArgs(PLAN, withoutHostname, { statusFd: 5, shareNet: true, asRoot: true }), [
      '--unshare-ipc',
      '--unshare-pid',
      '--unshare-uts',
      '--unshare-cgroup-try',
      '--share-net',
      '--cap-drop',
      'ALL',
      '--cap-add',
      'CAP_CHOWN',
      '--cap-add',
      'CAP_NET_BIND_SERVICE',
      '--new-session',
      '--clearenv',
      '--chdir',
      '/local',
      '--json-status-fd',
      '5',
      ...MOUNTS,
      '--',
      '/nix/store/abc-web/bin/web',
      '-p',
      '8080',
    ]);
  });

  it('waits on a block fd when asked (the adapter moves the sandbox into the task cgroup first)', () => {
    const args = renderBwrapArgs(PLAN, PROCESS, { ...USER, blockFd: 4 });
    assert.deepEqual(args.slice(args.indexOf('--json-status-fd'), args.indexOf('--json-status-fd') + 4), ['--json-status-fd', '3', '--block-fd', '4']);
    assert.ok(!renderBwrapArgs(PLAN, PROCESS, USER).includes('--block-fd'));
    fails(PROCESS, { ...USER, blockFd: 3 }, 'failed to launch task: blockFd 3 is also the statusFd; fix: use two different descriptors');
  });

  it('reports the sandbox pid on an info fd when asked (the adapter reads it from a pipe)', () => {
    const args = renderBwrapArgs(PLAN, PROCESS, { ...USER, blockFd: 4, infoFd: 6 });
    assert.deepEqual(args.slice(args.indexOf('--json-status-fd'), args.indexOf('--json-status-fd') + 6), [
      '--json-status-fd',
      '3',
      '--block-fd',
      '4',
      '--info-fd',
      '6',
    ]);
    assert.ok(!renderBwrapArgs(PLAN, PROCESS, USER).includes('--info-fd'));
    fails(
      PROCESS,
      { ...USER, blockFd: 4, infoFd: 4 },
      'failed to launch task: infoFd 4 is also the statusFd or the blockFd; fix: use three different descriptors',
    );
    fails(
      PROCESS,
      { ...USER, infoFd: 2 },
      "failed to launch task: infoFd 2 is not a descriptor number of 3 or more; fix: pass a descriptor of 3 or more; 0-2 are the task's stdio",
    );
  });

  it('renders dir and symlink ops and never --die-with-parent, --uid or --unshare-all', () => {
    const plan = {
      ops: [
        ...PLAN.ops.slice(0, -1),
        { kind: 'dir', target: '/run' } as const,
        { kind: 'symlink', linkTarget: '/nix/store/x-sh/bin/sh', target: '/bin/sh' } as const,
        ...PLAN.ops.slice(-1),
      ],
    };
    const args = renderBwrapArgs(plan, PROCESS, USER);
    assert.deepEqual(args.slice(args.indexOf('--tmpfs'), args.indexOf('--')), [
      '--tmpfs',
      '/tmp',
      '--dir',
      '/run',
      '--symlink',
      '/nix/store/x-sh/bin/sh',
      '/bin/sh',
      '--remount-ro',
      '/',
    ]);
    for (const flag of ['--die-with-parent', '--uid', '--gid', '--unshare-all']) assert.ok(!args.includes(flag), flag);
  });

  it('binds volumes with their modes and devices with --dev-bind, the only bind that keeps device nodes usable', () => {
    const plan = planRoot({
      storeView: '/var/lib/nix-driver/views/v1',
      allocDir: '/opt/nomad/alloc/a1',
      taskName: 'web',
      etcDir: '/var/lib/nix-driver/etc/a1-web',
      extraMounts: [
        { source: '/srv/data', target: '/data', readOnly: false },
        { source: '/srv/models', target: '/models', readOnly: true },
      ],
      devices: [{ source: '/dev/fuse', target: '/dev/fuse', deviceType: 'c', major: 10, minor: 229, permissions: 'rw' }],
    });
    const args = renderBwrapArgs(plan, PROCESS, USER);
    assert.deepEqual(args.slice(args.indexOf('--tmpfs'), args.indexOf('--')), [
      '--tmpfs',
      '/tmp',
      '--bind',
      '/srv/data',
      '/data',
      '--ro-bind',
      '/srv/models',
      '/models',
      '--dev-bind',
      '/dev/fuse',
      '/dev/fuse',
      '--remount-ro',
      '/',
    ]);
  });

  it('keeps arguments that look like flags after --', () => {
    const args = renderBwrapArgs(PLAN, { ...PROCESS, argv: ['/nix/store/abc-web/bin/web', '--bind', '/', '/'] }, USER);
    assert.deepEqual(args.slice(args.indexOf('--')), ['--', '/nix/store/abc-web/bin/web', '--bind', '/', '/']);
  });

  it('rejects a process it cannot render faithfully', () => {
    fails({ ...PROCESS, argv: [] }, USER, "failed to launch task: argv is empty; fix: set the task's command");
    fails(
      { ...PROCESS, argv: ['bin/web'] },
      USER,
      'failed to launch task: argv[0] "bin/web" is not an absolute path; fix: resolve the command to an absolute path inside the task root',
    );
    fails(
      { ...PROCESS, argv: ['/bin/web', 'a\0b'] },
      USER,
      'failed to launch task: argv[1] "a\\u0000b" contains a NUL byte; fix: remove the NUL byte from the task\'s args',
    );
    fails({ ...PROCESS, env: { 'A=B': 'x' } }, USER, 'failed to launch task: env name "A=B" contains "="; fix: rename the variable in the task\'s env block');
    fails({ ...PROCESS, env: { '': 'x' } }, USER, 'failed to launch task: env name "" is empty; fix: rename the variable in the task\'s env block');
    fails(
      { ...PROCESS, env: { 'A\0': 'x' } },
      USER,
      'failed to launch task: env name "A\\u0000" contains a NUL byte; fix: rename the variable in the task\'s env block',
    );
    fails(
      { ...PROCESS, cwd: 'local' },
      USER,
      'failed to launch task: cwd "local" is not an absolute path; fix: set work_dir to an absolute path inside the task, e.g. "/local"',
    );
    fails(
      { ...PROCESS, hostname: 'a b' },
      USER,
      'failed to launch task: hostname "a b" is not a host name of at most 64 letters, digits, "-" and "."; fix: set a valid hostname',
    );
    fails(
      PROCESS,
      { ...USER, statusFd: 1 },
      "failed to launch task: statusFd 1 is not a descriptor number of 3 or more; fix: pass a descriptor of 3 or more; 0-2 are the task's stdio",
    );
  });

  it('refuses asRoot that disagrees with the task uid', () => {
    const fix = 'fix: set asRoot exactly when the task user is root (uid 0)';
    fails(PROCESS, { ...USER, asRoot: true }, `failed to launch task: asRoot true does not match uid 1000; ${fix}`);
    fails(
      { ...PROCESS, capabilities: ['CAP_NET_ADMIN'] },
      USER,
      'failed to launch task: capabilities CAP_NET_ADMIN were requested for uid 1000; fix: run the task as root (allow_root) to grant capabilities under bubblewrap, use runc, or remove them',
    );
    fails(
      { ...PROCESS, uid: 0, capabilities: ['net_admin'] },
      { ...USER, asRoot: true },
      'failed to launch task: capability "net_admin" is not a name such as CAP_NET_BIND_SERVICE; fix: spell capabilities as CAP_ followed by the upper-case name',
    );
    fails({ ...PROCESS, uid: 0, gid: 0 }, USER, `failed to launch task: asRoot false does not match uid 0; ${fix}`);
  });
});

describe('splitArgsForFd', () => {
  it('moves every option (env, host mount paths) into the data bwrap reads; its argv is only --args FD and the command', () => {
    const args = renderBwrapArgs(PLAN, PROCESS, USER);
    const { argv, data } = splitArgsForFd(args, PROCESS.argv, 5);
    assert.deepEqual(argv, ['--args', '5', '--', '/nix/store/abc-web/bin/web', '-p', '8080']);
    const options = data.toString('utf8').split('\0');
    assert.equal(options.pop(), '', 'every option NUL-terminated');
    assert.deepEqual([...options, ...argv.slice(2)], args);
    assert.ok(!argv.some((arg) => arg.includes('/opt/nomad') || arg.includes('/var/lib/nix-driver') || arg.includes('NOMAD_TASK_NAME')));
  });

  it('refuses arguments that do not end with the command, and a NUL inside an option', () => {
    assert.throws(() => splitArgsForFd(['--proc', '/proc', '/bin/x'], ['/bin/x'], 5), { code: 'internal' });
    assert.throws(() => splitArgsForFd(['--setenv', 'A', 'x\0y', '--', '/bin/x'], ['/bin/x'], 5), { code: 'invalid_argument', message: /contains a NUL byte/ });
    assert.throws(() => splitArgsForFd(['--', '/bin/x'], ['/bin/x'], 2), { code: 'invalid_argument' });
  });
});

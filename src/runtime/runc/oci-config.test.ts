import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateOciConfig } from '../../../test/support/oci-schema.js';
import { planRoot } from '../../rootfs/plan.js';
import type { ProcessSpec } from '../process-spec.js';
import { renderOciConfig, type OciOptions } from './oci-config.js';

const PLAN = planRoot({
  storeView: '/var/lib/nix-driver/views/v1',
  allocDir: '/opt/nomad/alloc/a1',
  taskName: 'web',
  etcDir: '/var/lib/nix-driver/etc/e1',
  extraMounts: [{ source: '/srv/data', target: '/data', readOnly: true }],
});

const PROCESS: ProcessSpec = {
  argv: ['/nix/store/abc-web/bin/web', '-p', '8080'],
  env: { PATH: '/nix/store/abc-web/bin', NOMAD_TASK_NAME: 'web' },
  cwd: '/local',
  uid: 65534,
  gid: 65534,
  hostname: 'web-1',
  capabilities: [],
};

const OPTIONS: OciOptions = { initPath: '/usr/bin/tini-static', cgroupsPath: '/nomad-driver-nix/t1', arch: 'x64' };

const render = (process: ProcessSpec = PROCESS, options: OciOptions = OPTIONS, plan = PLAN) => renderOciConfig(plan, process, options);

const fails = (fn: () => unknown, message: string) => assert.throws(fn, { name: 'DriverError', code: 'invalid_argument', message });

describe('renderOciConfig', () => {
  it('renders a config that the runtime-spec schema accepts', () => {
    const { config } = render();
    const result = validateOciConfig(config);
    assert.deepEqual(result.errors, []);
    assert.equal(result.valid, true);
  });

  it('binds exactly the plan: closure and /etc read-only, task dirs read-write, no host path besides them and the init', () => {
    const { config } = render();
    const binds = config.mounts.filter((m) => m.type === 'bind').map((m) => [m.destination, m.source, m.options.join(',')]);
    assert.deepEqual(binds, [
      ['/nix/store', '/var/lib/nix-driver/views/v1', 'rbind,ro,nosuid,nodev'],
      ['/alloc', '/opt/nomad/alloc/a1/alloc', 'rbind,rw,nosuid,nodev'],
      ['/local', '/opt/nomad/alloc/a1/web/local', 'rbind,rw,nosuid,nodev'],
      ['/secrets', '/opt/nomad/alloc/a1/web/secrets', 'rbind,rw,nosuid,nodev'],
      ['/etc', '/var/lib/nix-driver/etc/e1', 'rbind,ro,nosuid,nodev'],
      ['/data', '/srv/data', 'rbind,ro,nosuid,nodev'],
      ['/dev/init', '/usr/bin/tini-static', 'bind,ro,nosuid,nodev'],
    ]);
    assert.deepEqual(
      config.mounts.filter((m) => m.type !== 'bind').map((m) => `${m.type}:${m.destination}`),
      ['proc:/proc', 'tmpfs:/dev', 'devpts:/dev/pts', 'tmpfs:/dev/shm', 'mqueue:/dev/mqueue', 'tmpfs:/tmp'],
    );
    assert.deepEqual(config.root, { path: 'rootfs', readonly: true });
  });

  it('runs the command under tini as the task user, with no privileges and a cleared environment', () => {
    const { config } = render();
    assert.deepEqual(config.process.args, ['/dev/init', '--', '/nix/store/abc-web/bin/web', '-p', '8080']);
    assert.deepEqual(config.process.user, { uid: 65534, gid: 65534 });
    assert.deepEqual(config.process.env, ['NOMAD_TASK_NAME=web', 'PATH=/nix/store/abc-web/bin']);
    assert.equal(config.process.noNewPrivileges, true);
    // Nomad's agent runs at -1000 under HashiCorp's unit; a task must be killable on OOM
    assert.equal(config.process.oomScoreAdj, 0);
    assert.deepEqual(config.process.capabilities, { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] });
    assert.equal(config.hostname, 'web-1');
    assert.equal(config.process.terminal, false);
  });

  it('gives a root task exactly its capability set', () => {
    const caps = ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'];
    const { config } = render({ ...PROCESS, uid: 0, gid: 0, capabilities: caps });
    assert.deepEqual(config.process.capabilities, { bounding: caps, effective: caps, inheritable: [], permitted: caps, ambient: [] });
    assert.equal(validateOciConfig(config).valid, true);
  });

  it('gives an unprivileged task its capabilities as ambient ones (inheritable and permitted too)', () => {
    const caps = ['CAP_NET_BIND_SERVICE'];
    const { config } = render({ ...PROCESS, capabilities: caps });
    assert.deepEqual(config.process.capabilities, { bounding: caps, effective: caps, inheritable: caps, permitted: caps, ambient: caps });
    assert.equal(config.process.noNewPrivileges, true);
    assert.equal(validateOciConfig(config).valid, true);
  });

  it('binds a device without nodev and allows exactly that node, with its permissions, in the device cgroup', () => {
    const plan = planRoot({
      storeView: '/var/lib/nix-driver/views/v1',
      allocDir: '/opt/nomad/alloc/a1',
      taskName: 'web',
      etcDir: '/var/lib/nix-driver/etc/e1',
      devices: [
        { source: '/dev/fuse', target: '/dev/fuse', deviceType: 'c', major: 10, minor: 229, permissions: 'r' },
        { source: '/dev/loop0', target: '/dev/disk0', deviceType: 'b', major: 7, minor: 0, permissions: 'rwm' },
      ],
    });
    const { config } = render(PROCESS, OPTIONS, plan);
    const devices = config.mounts.filter((m) => m.destination === '/dev/fuse' || m.destination === '/dev/disk0');
    assert.deepEqual(devices, [
      { destination: '/dev/fuse', type: 'bind', source: '/dev/fuse', options: ['bind', 'nosuid', 'noexec'] },
      { destination: '/dev/disk0', type: 'bind', source: '/dev/loop0', options: ['bind', 'nosuid', 'noexec'] },
    ]);
    // after runc's /dev tmpfs, so they land on it
    assert.ok(config.mounts.findIndex((m) => m.destination === '/dev') < config.mounts.findIndex((m) => m.destination === '/dev/fuse'));
    assert.deepEqual(config.linux.resources.devices, [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 10, minor: 229, access: 'r' },
      { allow: true, type: 'b', major: 7, minor: 0, access: 'rwm' },
    ]);
    const result = validateOciConfig(config);
    assert.deepEqual(result.errors, []);
  });

  it('uses the host network unless a network namespace is given, which it joins by path', () => {
    const types = (options: OciOptions) => render(PROCESS, options).config.linux.namespaces;
    assert.deepEqual(types(OPTIONS), [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }]);
    const joined = types({ ...OPTIONS, networkNamespace: '/var/run/netns/a1' });
    assert.deepEqual(joined.at(-1), { type: 'network', path: '/var/run/netns/a1' });
    assert.ok(!joined.some((n) => n.type === 'user'), 'no user namespace: runc switches to the task uid itself');
  });

  it('maps limits to linux.resources and denies every device beyond the defaults', () => {
    const { config } = render(PROCESS, {
      ...OPTIONS,
      limits: { cpuShares: 500, cpusetCpus: '0-1', memoryLimitBytes: 268435456, memorySoftLimitBytes: 134217728, pidsLimit: 64 },
    });
    assert.deepEqual(config.linux.resources, {
      devices: [{ allow: false, access: 'rwm' }],
      cpu: { shares: 500, cpus: '0-1' },
      memory: { limit: 268435456, reservation: 134217728 },
      pids: { limit: 64 },
    });
    assert.equal(config.linux.cgroupsPath, '/nomad-driver-nix/t1');
    assert.equal(validateOciConfig(config).valid, true);
    assert.deepEqual(render().config.linux.resources, { devices: [{ allow: false, access: 'rwm' }] });
  });

  it("sizes /dev/shm to the task's memory limit (bubblewrap's /dev/shm has no cap of its own), the kernel's default without one", () => {
    const shm = (options: OciOptions) => render(PROCESS, options).config.mounts.find((m) => m.destination === '/dev/shm')?.options;
    assert.deepEqual(shm({ ...OPTIONS, limits: { memoryLimitBytes: 268435456 } }), ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=268435456']);
    assert.deepEqual(shm(OPTIONS), ['nosuid', 'noexec', 'nodev', 'mode=1777']);
  });

  it('has a seccomp deny list for this architecture that refuses namespaces, mounts and module loading', () => {
    const { seccomp } = render().config.linux;
    assert.equal(seccomp.defaultAction, 'SCMP_ACT_ALLOW');
    assert.deepEqual(seccomp.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const denied = seccomp.syscalls.filter((r) => r.action === 'SCMP_ACT_ERRNO').flatMap((r) => r.names);
    for (const name of ['unshare', 'setns', 'mount', 'init_module', 'kexec_load', 'bpf', 'keyctl', 'clone', 'clone3']) assert.ok(denied.includes(name), name);
    // io_uring's operations run in kernel workers seccomp never sees (refused by default as in Docker)
    for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) assert.ok(denied.includes(name), name);
    assert.deepEqual(render(PROCESS, { ...OPTIONS, arch: 'arm64' }).config.linux.seccomp.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  });

  it('turns dir and symlink ops into rootfs entries and refuses them inside a mount', () => {
    const ops = PLAN.ops;
    const plan = {
      ops: [
        ...ops.slice(0, -1),
        { kind: 'dir', target: '/run' } as const,
        { kind: 'symlink', linkTarget: '/nix/store/x-sh/bin/sh', target: '/bin/sh' } as const,
        ...ops.slice(-1),
      ],
    };
    assert.deepEqual(render(PROCESS, OPTIONS, plan).rootfsEntries, [
      { kind: 'dir', path: '/run' },
      { kind: 'symlink', path: '/bin/sh', linkTarget: '/nix/store/x-sh/bin/sh' },
    ]);
    const inside = { ops: [...ops.slice(0, -1), { kind: 'dir', target: '/tmp/x' } as const] };
    fails(
      () => render(PROCESS, OPTIONS, inside),
      'failed to launch task: dir "/tmp/x" lies inside a mount of the plan; fix: create /tmp/x before the mount that covers it, or outside it',
    );
  });

  it('folds a remount-ro of a mount into its options and refuses one of nothing', () => {
    const plan = { ops: [...PLAN.ops, { kind: 'remount-ro', target: '/alloc' } as const] };
    const alloc = render(PROCESS, OPTIONS, plan).config.mounts.find((m) => m.destination === '/alloc');
    assert.deepEqual(alloc?.options, ['rbind', 'nosuid', 'nodev', 'ro']);
    fails(
      () => render(PROCESS, OPTIONS, { ops: [...PLAN.ops, { kind: 'remount-ro', target: '/nowhere' } as const] }),
      'failed to launch task: remount-ro of "/nowhere" follows no mount at that target; fix: remount only a target the plan mounted before',
    );
  });

  it('refuses what the schema would let through: relative paths, bad capability names, bad limits', () => {
    fails(
      () => render({ ...PROCESS, cwd: 'local' }),
      'failed to launch task: cwd "local" is not an absolute path; fix: set work_dir to an absolute path inside the task, e.g. "/local"',
    );
    fails(
      () => render({ ...PROCESS, uid: 0, capabilities: ['NET_ADMIN'] }),
      'failed to launch task: capability "NET_ADMIN" is not a name such as CAP_NET_BIND_SERVICE; fix: spell capabilities as CAP_ followed by the upper-case name',
    );
    fails(
      () => render(PROCESS, { ...OPTIONS, networkNamespace: 'netns/a1' }),
      'failed to launch task: networkNamespace "netns/a1" is not an absolute path; fix: pass the path of Nomad\'s network namespace, e.g. /var/run/netns/<alloc id>',
    );
    fails(
      () => render(PROCESS, { ...OPTIONS, initPath: 'tini' }),
      'failed to launch task: initPath "tini" is not an absolute path; fix: point the driver at a statically linked tini (Debian: tini-static)',
    );
    fails(
      () => render(PROCESS, { ...OPTIONS, cgroupsPath: '/' }),
      'failed to launch task: cgroupsPath "/" is the root cgroup; fix: give the task a cgroup of its own',
    );
    fails(
      () => render(PROCESS, { ...OPTIONS, limits: { pidsLimit: -1 } }),
      "failed to launch task: limits.pidsLimit -1 is not a positive integer; fix: set the task's pidsLimit to a positive whole number",
    );
    fails(
      () => render(PROCESS, { ...OPTIONS, limits: { cpusetCpus: '0;1' } }),
      'failed to launch task: limits.cpusetCpus "0;1" is not a CPU list such as "0-1,3"; fix: reserve cores with the task\'s resources { cores = N }',
    );
    fails(() => render({ ...PROCESS, argv: [] }), "failed to launch task: argv is empty; fix: set the task's command");
  });
});

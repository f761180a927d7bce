import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRoot, taskHome, type RootPlanInput } from './plan.js';

const INPUT: RootPlanInput = {
  storeView: '/var/lib/nomad-driver-nix/views/a1b2',
  allocDir: '/opt/nomad/alloc/5e1f',
  taskName: 'web',
  etcDir: '/var/lib/nomad-driver-nix/etc/5e1f-web',
};

const fails = (input: RootPlanInput, message: string) => assert.throws(() => planRoot(input), { name: 'DriverError', code: 'invalid_argument', message });

describe('planRoot', () => {
  it('plans the closure, the task dirs, /etc, proc, dev, tmp and a read-only root, in that order', () => {
    assert.deepEqual(planRoot(INPUT).ops, [
      { kind: 'ro-bind', source: '/var/lib/nomad-driver-nix/views/a1b2', target: '/nix/store' },
      { kind: 'bind', source: '/opt/nomad/alloc/5e1f/alloc', target: '/alloc' },
      { kind: 'bind', source: '/opt/nomad/alloc/5e1f/web/local', target: '/local' },
      { kind: 'bind', source: '/opt/nomad/alloc/5e1f/web/secrets', target: '/secrets' },
      { kind: 'ro-bind', source: '/var/lib/nomad-driver-nix/etc/5e1f-web', target: '/etc' },
      { kind: 'proc', target: '/proc' },
      { kind: 'dev', target: '/dev' },
      { kind: 'tmpfs', target: '/tmp' },
      { kind: 'remount-ro', target: '/' },
    ]);
  });

  it('places extra mounts before the root turns read-only, with their own modes', () => {
    const ops = planRoot({
      ...INPUT,
      extraMounts: [
        { source: '/srv/data', target: '/data', readOnly: false },
        { source: '/srv/models', target: '/opt/models', readOnly: true },
        { source: '/srv/scratch', target: '/tmp/scratch', readOnly: false },
      ],
    }).ops;
    assert.deepEqual(ops.slice(-4), [
      { kind: 'bind', source: '/srv/data', target: '/data' },
      { kind: 'ro-bind', source: '/srv/models', target: '/opt/models' },
      { kind: 'bind', source: '/srv/scratch', target: '/tmp/scratch' },
      { kind: 'remount-ro', target: '/' },
    ]);
  });

  it("links /bin/sh and /usr/bin/env in the root's tmpfs with their parent directories, before it turns read-only", () => {
    const ops = planRoot({
      ...INPUT,
      fhsLinks: [
        { path: '/bin/sh', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/sh' },
        { path: '/usr/bin/env', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/env' },
      ],
    }).ops;
    assert.deepEqual(ops.slice(-6), [
      { kind: 'dir', target: '/bin' },
      { kind: 'symlink', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/sh', target: '/bin/sh' },
      { kind: 'dir', target: '/usr' },
      { kind: 'dir', target: '/usr/bin' },
      { kind: 'symlink', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/env', target: '/usr/bin/env' },
      { kind: 'remount-ro', target: '/' },
    ]);
  });

  it('leaves out an FHS link that a volume covers or would be mounted on', () => {
    const sh = { path: '/bin/sh', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/sh' } as const;
    const env = { path: '/usr/bin/env', linkTarget: '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/env' } as const;
    const kinds = (target: string) =>
      planRoot({ ...INPUT, fhsLinks: [sh, env], extraMounts: [{ source: '/srv/x', target, readOnly: false }] })
        .ops.filter((op) => op.kind === 'dir' || op.kind === 'symlink')
        .map((op) => op.target);
    assert.deepEqual(kinds('/usr'), ['/bin', '/bin/sh']);
    assert.deepEqual(kinds('/bin/sh'), ['/usr', '/usr/bin', '/usr/bin/env']);
    assert.deepEqual(kinds('/usr/lib'), ['/bin', '/bin/sh', '/usr', '/usr/bin', '/usr/bin/env']);
  });

  it('links only the FHS paths, once each, to a path below /nix/store', () => {
    const target = '/nix/store/0c6a1r8ix1bqnpbrc3kljvvlfhd8h0cv-busybox/bin/sh';
    fails(
      { ...INPUT, fhsLinks: [{ path: '/etc/passwd' as '/bin/sh', linkTarget: target }] },
      'failed to start task: fhsLinks[0].path "/etc/passwd" is not one of /bin/sh, /usr/bin/env; fix: link only the FHS paths the driver provides',
    );
    fails(
      {
        ...INPUT,
        fhsLinks: [
          { path: '/bin/sh', linkTarget: target },
          { path: '/bin/sh', linkTarget: target },
        ],
      },
      'failed to start task: fhsLinks[1].path "/bin/sh" is linked twice; fix: link each path once',
    );
    fails(
      { ...INPUT, fhsLinks: [{ path: '/bin/sh', linkTarget: '/bin/busybox' }] },
      'failed to start task: fhsLinks[0].linkTarget "/bin/busybox" is not below /nix/store; fix: link to a program of the task\'s closure',
    );
    fails(
      { ...INPUT, fhsLinks: [{ path: '/bin/sh', linkTarget: '/nix/store/../../bin/sh' }] },
      'failed to start task: fhsLinks[0].linkTarget "/nix/store/../../bin/sh" contains a ".." segment; fix: link to a program of the task\'s closure',
    );
  });

  it("the task user's home: its own when the task can write there (a task dir, /tmp, a read-write volume), else /local", () => {
    assert.equal(taskHome('/nonexistent'), '/local');
    assert.equal(taskHome('/root'), '/local');
    assert.equal(taskHome('/'), '/local');
    assert.equal(taskHome('/dev'), '/local');
    assert.equal(taskHome('/tmp'), '/tmp');
    assert.equal(taskHome('/alloc'), '/alloc');
    assert.equal(taskHome('/home/app', [{ source: '/srv/home-app', target: '/home/app', readOnly: false }]), '/home/app');
    assert.equal(taskHome('/home/app', [{ source: '/srv/home-app', target: '/home/app', readOnly: true }]), '/local');
    assert.equal(taskHome('/home/app/sub', [{ source: '/srv/home-app', target: '/home/app', readOnly: false }]), '/local');
  });

  it('rejects host paths that are not absolute and normalised, naming the field and value', () => {
    fails(
      { ...INPUT, allocDir: 'rel/x' },
      'failed to start task: allocDir "rel/x" is not an absolute path; fix: set allocDir to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, storeView: '/var/lib/views/../../etc' },
      'failed to start task: storeView "/var/lib/views/../../etc" contains a ".." segment; fix: set storeView to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, etcDir: '/var/lib//etc' },
      'failed to start task: etcDir "/var/lib//etc" is not normalised (remove "//", "." or a trailing "/"); fix: set etcDir to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, etcDir: '/var/lib/etc/' },
      'failed to start task: etcDir "/var/lib/etc/" is not normalised (remove the trailing "/"); fix: set etcDir to an absolute, normalised host path',
    );
    fails({ ...INPUT, etcDir: '' }, 'failed to start task: etcDir "" is empty; fix: set etcDir to an absolute, normalised host path');
  });

  it('never binds the host root', () => {
    fails({ ...INPUT, etcDir: '/' }, 'failed to start task: etcDir "/" is the host root; fix: set etcDir to a dedicated directory, never "/"');
  });

  it('refuses a store view that is (inside) the real store', () => {
    fails(
      { ...INPUT, storeView: '/nix/store' },
      'failed to start task: storeView "/nix/store" lies inside /nix/store; fix: build the closure view in a directory of the plugin\'s state dir',
    );
    fails(
      { ...INPUT, storeView: '/nix/store/.views/a1' },
      'failed to start task: storeView "/nix/store/.views/a1" lies inside /nix/store; fix: build the closure view in a directory of the plugin\'s state dir',
    );
  });

  it('rejects task names that are not one path segment', () => {
    const fix = 'fix: pass the Nomad task name, a single path segment';
    fails({ ...INPUT, taskName: '' }, `failed to start task: taskName "" is empty; ${fix}`);
    fails({ ...INPUT, taskName: '..' }, `failed to start task: taskName ".." is a relative path segment; ${fix}`);
    fails({ ...INPUT, taskName: '.' }, `failed to start task: taskName "." is a relative path segment; ${fix}`);
    fails({ ...INPUT, taskName: 'web/../../x' }, `failed to start task: taskName "web/../../x" contains "/"; ${fix}`);
  });

  it('rejects extra mounts that would shadow the plan or each other', () => {
    const fix = 'fix: mount the volume at an absolute, normalised path of its own, e.g. "/srv/data"';
    const extra = (target: string, source = '/srv/v') => ({ ...INPUT, extraMounts: [{ source, target, readOnly: true }] });
    fails(extra('/nix'), `failed to start task: extraMounts[0].target "/nix" would shadow /nix/store; ${fix}`);
    fails(extra('/nix/store/x'), `failed to start task: extraMounts[0].target "/nix/store/x" would shadow /nix/store; ${fix}`);
    fails(extra('/etc/ssl'), `failed to start task: extraMounts[0].target "/etc/ssl" would shadow /etc; ${fix}`);
    fails(extra('/proc/sys'), `failed to start task: extraMounts[0].target "/proc/sys" would shadow /proc; ${fix}`);
    fails(extra('/dev'), `failed to start task: extraMounts[0].target "/dev" would shadow /dev; ${fix}`);
    fails(extra('/secrets'), `failed to start task: extraMounts[0].target "/secrets" would shadow /secrets; ${fix}`);
    fails(extra('/local/data'), `failed to start task: extraMounts[0].target "/local/data" would shadow /local; ${fix}`);
    fails(extra('/alloc'), `failed to start task: extraMounts[0].target "/alloc" would shadow /alloc; ${fix}`);
    fails(extra('/'), `failed to start task: extraMounts[0].target "/" would replace the task root; ${fix}`);
    fails(extra('data'), `failed to start task: extraMounts[0].target "data" is not an absolute path; ${fix}`);
    fails(
      extra('/data', 'srv'),
      'failed to start task: extraMounts[0].source "srv" is not an absolute path; fix: set extraMounts[0].source to an absolute, normalised host path',
    );
    fails(
      {
        ...INPUT,
        extraMounts: [
          { source: '/srv/a', target: '/data/a', readOnly: true },
          { source: '/srv/b', target: '/data', readOnly: false },
        ],
      },
      'failed to start task: extraMounts[1].target "/data" overlaps the extra mount at "/data/a"; fix: give each volume its own, non-nested target',
    );
  });

  it("refuses volumes that show the store, the plugin's state or the host root", () => {
    const fix = "fix: point the volume at a directory of its own, outside /nix/store and the plugin's state_dir";
    const extra = (source: string) => ({
      ...INPUT,
      protectedHostDirs: ['/var/lib/nomad-driver-nix'],
      extraMounts: [{ source, target: '/data', readOnly: false }],
    });
    fails(extra('/nix/store/abc-x'), `failed to start task: extraMounts[0].source "/nix/store/abc-x" lies inside /nix/store, which no task may see; ${fix}`);
    fails(extra('/nix'), `failed to start task: extraMounts[0].source "/nix" contains /nix/store, which no task may see; ${fix}`);
    fails(
      extra('/var/lib/nomad-driver-nix/tasks'),
      `failed to start task: extraMounts[0].source "/var/lib/nomad-driver-nix/tasks" lies inside /var/lib/nomad-driver-nix, which no task may see; ${fix}`,
    );
    fails(extra('/var/lib'), `failed to start task: extraMounts[0].source "/var/lib" contains /var/lib/nomad-driver-nix, which no task may see; ${fix}`);
    fails(extra('/'), 'failed to start task: extraMounts[0].source "/" is the host root; fix: set extraMounts[0].source to a dedicated directory, never "/"');
    assert.equal(planRoot(extra('/srv/data')).ops.at(-2)?.kind, 'bind');
  });

  it('binds devices below /dev after the volumes, with their numbers and permissions', () => {
    const device = { source: '/dev/fuse', target: '/dev/fuse', deviceType: 'c', major: 10, minor: 229, permissions: 'rw' } as const;
    const ops = planRoot({ ...INPUT, extraMounts: [{ source: '/srv/data', target: '/data', readOnly: false }], devices: [device] }).ops;
    assert.deepEqual(ops.slice(-3), [
      { kind: 'bind', source: '/srv/data', target: '/data' },
      { kind: 'dev-bind', ...device },
      { kind: 'remount-ro', target: '/' },
    ]);
  });

  it("refuses devices outside /dev, over the runtime's own /dev entries, overlapping, or with bad permissions", () => {
    const base = { source: '/dev/fuse', target: '/dev/fuse', deviceType: 'c', major: 10, minor: 229, permissions: 'rw' } as const;
    const dev = (change: Partial<Record<keyof typeof base, unknown>>, more: object[] = []) => ({
      ...INPUT,
      devices: [...more, { ...base, ...change }] as never,
    });
    const fix = "fix: reserve a device node below /dev (a device plugin's device spec: host_path and task_path below /dev)";
    fails(dev({ source: '/srv/fuse' }), `failed to start task: devices[0].source "/srv/fuse" is not below /dev; ${fix}`);
    fails(dev({ target: '/opt/fuse' }), `failed to start task: devices[0].target "/opt/fuse" is not below /dev; ${fix}`);
    fails(dev({ target: '/dev' }), `failed to start task: devices[0].target "/dev" is not below /dev; ${fix}`);
    fails(dev({ target: '/dev/../etc/x' }), `failed to start task: devices[0].target "/dev/../etc/x" contains a ".." segment; ${fix}`);
    fails(
      dev({ target: '/dev/null' }),
      'failed to start task: devices[0].target "/dev/null" would replace the runtime\'s /dev/null; fix: give the device a task_path of its own below /dev, e.g. "/dev/fuse"',
    );
    fails(
      dev({ target: '/dev/pts/0' }),
      'failed to start task: devices[0].target "/dev/pts/0" would replace the runtime\'s /dev/pts; fix: give the device a task_path of its own below /dev, e.g. "/dev/fuse"',
    );
    fails(dev({}, [base]), 'failed to start task: devices[1].target "/dev/fuse" overlaps the device at "/dev/fuse"; fix: give each device its own task_path');
    fails(dev({ deviceType: 'p' }), 'failed to start task: devices[0].deviceType "p" is not "c" or "b"; fix: bind only character or block devices');
    fails(dev({ major: -1 }), 'failed to start task: devices[0].major -1 is not a device number; fix: take the numbers from stat(2) of the host device node');
    for (const permissions of ['', 'wr', 'rwx', 'rr']) {
      fails(
        dev({ permissions }),
        `failed to start task: devices[0].permissions ${JSON.stringify(permissions)} is not a non-empty subset of "rwm"; fix: grant some of r (read), w (write) and m (mknod), in that order, e.g. "rw"`,
      );
    }
  });
});

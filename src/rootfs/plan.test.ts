import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planRoot, type RootPlanInput } from './plan.js';

const INPUT: RootPlanInput = {
  storeView: '/var/lib/nomad-driver-nix/views/a1b2',
  allocDir: '/opt/nomad/alloc/5e1f',
  taskName: 'web',
  etcDir: '/var/lib/nomad-driver-nix/etc/5e1f-web',
};

const fails = (input: RootPlanInput, message: string) =>
  assert.throws(() => planRoot(input), { name: 'DriverError', code: 'invalid_argument', message });

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

  it('rejects host paths that are not absolute and normalised, naming the field and value', () => {
    fails(
      { ...INPUT, allocDir: 'rel/x' },
      'failed to plan task root: allocDir "rel/x" is not an absolute path; fix: set allocDir to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, storeView: '/var/lib/views/../../etc' },
      'failed to plan task root: storeView "/var/lib/views/../../etc" contains a ".." segment; fix: set storeView to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, etcDir: '/var/lib//etc' },
      'failed to plan task root: etcDir "/var/lib//etc" is not normalised (remove "//", "." or a trailing "/"); fix: set etcDir to an absolute, normalised host path',
    );
    fails(
      { ...INPUT, etcDir: '/var/lib/etc/' },
      'failed to plan task root: etcDir "/var/lib/etc/" is not normalised (remove the trailing "/"); fix: set etcDir to an absolute, normalised host path',
    );
    fails({ ...INPUT, etcDir: '' }, 'failed to plan task root: etcDir "" is empty; fix: set etcDir to an absolute, normalised host path');
  });

  it('never binds the host root', () => {
    fails({ ...INPUT, etcDir: '/' }, 'failed to plan task root: etcDir "/" is the host root; fix: set etcDir to a dedicated directory, never "/"');
  });

  it('refuses a store view that is (inside) the real store', () => {
    fails(
      { ...INPUT, storeView: '/nix/store' },
      'failed to plan task root: storeView "/nix/store" lies inside /nix/store; fix: build the closure view in a directory of the plugin\'s state dir',
    );
    fails(
      { ...INPUT, storeView: '/nix/store/.views/a1' },
      'failed to plan task root: storeView "/nix/store/.views/a1" lies inside /nix/store; fix: build the closure view in a directory of the plugin\'s state dir',
    );
  });

  it('rejects task names that are not one path segment', () => {
    const fix = 'fix: pass the Nomad task name, a single path segment';
    fails({ ...INPUT, taskName: '' }, `failed to plan task root: taskName "" is empty; ${fix}`);
    fails({ ...INPUT, taskName: '..' }, `failed to plan task root: taskName ".." is a relative path segment; ${fix}`);
    fails({ ...INPUT, taskName: '.' }, `failed to plan task root: taskName "." is a relative path segment; ${fix}`);
    fails({ ...INPUT, taskName: 'web/../../x' }, `failed to plan task root: taskName "web/../../x" contains "/"; ${fix}`);
  });

  it('rejects extra mounts that would shadow the plan or each other', () => {
    const fix = 'fix: mount the volume at an absolute, normalised path of its own, e.g. "/srv/data"';
    const extra = (target: string, source = '/srv/v') => ({ ...INPUT, extraMounts: [{ source, target, readOnly: true }] });
    fails(extra('/nix'), `failed to plan task root: extraMounts[0].target "/nix" would shadow /nix/store; ${fix}`);
    fails(extra('/nix/store/x'), `failed to plan task root: extraMounts[0].target "/nix/store/x" would shadow /nix/store; ${fix}`);
    fails(extra('/etc/ssl'), `failed to plan task root: extraMounts[0].target "/etc/ssl" would shadow /etc; ${fix}`);
    fails(extra('/proc/sys'), `failed to plan task root: extraMounts[0].target "/proc/sys" would shadow /proc; ${fix}`);
    fails(extra('/dev'), `failed to plan task root: extraMounts[0].target "/dev" would shadow /dev; ${fix}`);
    fails(extra('/secrets'), `failed to plan task root: extraMounts[0].target "/secrets" would shadow /secrets; ${fix}`);
    fails(extra('/local/data'), `failed to plan task root: extraMounts[0].target "/local/data" would shadow /local; ${fix}`);
    fails(extra('/alloc'), `failed to plan task root: extraMounts[0].target "/alloc" would shadow /alloc; ${fix}`);
    fails(extra('/'), `failed to plan task root: extraMounts[0].target "/" would replace the task root; ${fix}`);
    fails(extra('data'), `failed to plan task root: extraMounts[0].target "data" is not an absolute path; ${fix}`);
    fails(extra('/data', 'srv'), 'failed to plan task root: extraMounts[0].source "srv" is not an absolute path; fix: set extraMounts[0].source to an absolute, normalised host path');
    fails(
      {
        ...INPUT,
        extraMounts: [
          { source: '/srv/a', target: '/data/a', readOnly: true },
          { source: '/srv/b', target: '/data', readOnly: false },
        ],
      },
      'failed to plan task root: extraMounts[1].target "/data" overlaps the extra mount at "/data/a"; fix: give each volume its own, non-nested target',
    );
  });
});

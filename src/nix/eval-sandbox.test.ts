import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ETC_ENTRIES, flakeSandboxArgv, PROC_PRELUDE, type FlakeSandboxHost } from './eval-sandbox.js';

const HOST: FlakeSandboxHost = {
  bwrap: '/usr/bin/bwrap',
  rootEntries: [
    { path: '/bin', kind: 'symlink', target: '/usr/bin' },
    { path: '/lib', kind: 'symlink', target: '/usr/lib' },
    { path: '/lib64', kind: 'directory' },
  ],
  home: '/var/lib/nomad-driver-nix/nix-home',
  flakeDirs: ['/srv/flakes', '/tmp/e2e-flakes'],
  nix: '/usr/bin/nix',
  env: {
    PATH: '/opt/x/bin',
    NOMAD_TOKEN: 'secret',
    VAULT_TOKEN: 'secret',
    https_proxy: 'http://proxy:3128',
    NIX_SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt',
  },
};

const ETC = ETC_ENTRIES.flatMap((path) => ['--ro-bind-try', path, path]);

describe('flakeSandboxArgv', () => {
  it('shows /nix, /usr, the program dirs, listed /etc entries, fresh /proc /dev /tmp, the flake dirs and HOME, then runs nix behind the /proc prelude', () => {
    assert.deepEqual(flakeSandboxArgv(HOST, ['build', '--', 'path:/srv/flakes/web#web']), [
      '/usr/bin/bwrap',
      '--die-with-parent',
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--bind',
      '/nix',
      '/nix',
      '--ro-bind',
      '/usr',
      '/usr',
      '--symlink',
      '/usr/bin',
      '/bin',
      '--symlink',
      '/usr/lib',
      '/lib',
      '--ro-bind',
      '/lib64',
      '/lib64',
      ...ETC,
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--tmpfs',
      '/tmp',
      '--ro-bind',
      '/srv/flakes',
      '/srv/flakes',
      '--ro-bind',
      '/tmp/e2e-flakes',
      '/tmp/e2e-flakes',
      '--bind',
      '/var/lib/nomad-driver-nix/nix-home',
      '/var/lib/nomad-driver-nix/nix-home',
      '--clearenv',
      '--setenv',
      'PATH',
      '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin',
      '--setenv',
      'HOME',
      '/var/lib/nomad-driver-nix/nix-home',
      '--setenv',
      'XDG_CACHE_HOME',
      '/var/lib/nomad-driver-nix/nix-home/.cache',
      '--setenv',
      'TMPDIR',
      '/tmp',
      '--setenv',
      'https_proxy',
      'http://proxy:3128',
      '--setenv',
      'NIX_SSL_CERT_FILE',
      '/etc/ssl/certs/ca-certificates.crt',
      '--chdir',
      '/',
      '--',
      '/bin/sh',
      '-c',
      'mount -t proc -o nosuid,nodev,noexec proc /proc && exec "$@"',
      'nix-flake-sandbox',
      '/usr/bin/nix',
      'build',
      '--',
      'path:/srv/flakes/web#web',
    ]);
  });

  it('gives Nix an empty environment but for PATH, HOME, the cache, TMPDIR, proxies and TLS trust: no agent tokens', () => {
    const argv = flakeSandboxArgv(HOST, ['build']);
    assert.ok(argv.indexOf('--clearenv') < argv.indexOf('--setenv'));
    assert.equal(argv.includes('NOMAD_TOKEN'), false);
    assert.equal(argv.includes('VAULT_TOKEN'), false);
    assert.equal(argv.includes('/opt/x/bin'), false);
  });

  it("lists from /etc no secrets: not shadow, gshadow, ssl/private, sudoers, nor Nomad's config", () => {
    for (const path of ['/etc/shadow', '/etc/gshadow', '/etc/ssl', '/etc/ssl/private', '/etc/sudoers', '/etc/nomad.d', '/etc', '/etc/nix', '/etc/nix/netrc']) {
      assert.equal((ETC_ENTRIES as readonly string[]).includes(path), false, path);
    }
  });

  it('never shows /root, /home, /var, /run, /etc as a whole or /', () => {
    const argv = flakeSandboxArgv(HOST, ['build']);
    const sources = argv.flatMap((arg, i) => (['--bind', '--ro-bind', '--ro-bind-try'].includes(arg) ? [argv[i + 1] ?? ''] : []));
    for (const hidden of ['/', '/root', '/home', '/var', '/run', '/etc', '/var/lib/nomad-driver-nix']) assert.equal(sources.includes(hidden), false, hidden);
  });

  it("shows the nix binary's directory only when it is outside /usr and /nix", () => {
    const at = (nix: string) => flakeSandboxArgv({ ...HOST, nix, flakeDirs: [] }, []).join(' ');
    assert.match(at('/opt/nix/bin/nix'), / --ro-bind \/opt\/nix\/bin \/opt\/nix\/bin --bind /);
    assert.doesNotMatch(at('/nix/store/abc-nix-2.8/bin/nix'), /--ro-bind \/nix\/store/);
    assert.doesNotMatch(at('/usr/local/bin/nix'), /--ro-bind \/usr\/local/);
  });

  it("passes the job's flake only as an argument after the prelude, never inside the script", () => {
    const argv = flakeSandboxArgv(HOST, ['build', '--', 'path:/srv/flakes/$(reboot)#x']);
    assert.equal(argv[argv.indexOf('-c') + 1], PROC_PRELUDE);
    assert.equal(argv.at(-1), 'path:/srv/flakes/$(reboot)#x');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FLAKE_FIX, localFlakeProblem, parseFlakeInstallable, renderLocalInstallable, type LocalFlake } from './flake-ref.js';

const HASH = 'a3a3dda3bacf61e8a39258a0ed9c924eeca8e293';

describe('flake installable grammar', () => {
  it('accepts the remote forms of the Nix manual, with their parameters and attribute paths', () => {
    const remote = [
      'github:NixOS/nixpkgs#hello',
      'github:NixOS/nixpkgs',
      'github:NixOS/nixpkgs/nixos-23.11#legacyPackages.x86_64-linux.hello',
      `github:NixOS/nixpkgs/${HASH}#hello`,
      'github:edolstra/nix-warez?dir=blender#default',
      'github:owner/repo?host=github.example.org&ref=v1.2#web',
      'gitlab:veloren/veloren#default',
      'gitlab:group%2Fsub/repo#x',
      'sourcehut:~misterio/nix-colors/main#x',
      'git+https://example.org/my/repo#web',
      'git+https://example.org/my/repo?dir=flake1&ref=main#web',
      `git+https://github.com/NixOS/patchelf?ref=master&rev=${HASH}`,
      'git+ssh://git@github.com/NixOS/nix?ref=v1.2.3#x',
      'git+ssh://git@example.org:2222/repo.git?submodules=1#a',
      'https://github.com/NixOS/patchelf/archive/master.tar.gz#x',
      'https://example.org/app.zip?narHash=sha256-GUm8Uh/U74zFCwkvt9Mri4DSM%2BmHj3tYhXUkYpiv31M%3D#x',
      'tarball+https://example.org/latest#x',
      'nixpkgs#hello',
      'nixpkgs',
      'nixpkgs/nixos-23.11#hello',
      `nixpkgs/release-20.09/${HASH}#hello`,
      'flake:nixpkgs#hello',
      'nixpkgs#"hello.world".x',
      "nixpkgs#python3Packages.pip_23-1'",
    ];
    for (const text of remote) {
      const parsed = parseFlakeInstallable(text);
      assert.equal(parsed.ok, true, `${text}: ${parsed.ok ? '' : parsed.problem.cause}`);
      assert.equal(parsed.ok && parsed.value.source.kind, 'remote', text);
    }
  });

  it('parses path: and git+file: as local flakes', () => {
    assert.deepEqual(parseFlakeInstallable('path:/srv/flakes/app#web'), {
      ok: true,
      value: { source: { kind: 'local', scheme: 'path', path: '/srv/flakes/app', query: '', dir: '' }, attrPath: 'web' },
    });
    assert.deepEqual(parseFlakeInstallable('git+file:///srv/repo?dir=sub/flake&ref=main#a.b'), {
      ok: true,
      value: { source: { kind: 'local', scheme: 'git+file', path: '/srv/repo', query: 'dir=sub/flake&ref=main', dir: 'sub/flake' }, attrPath: 'a.b' },
    });
    assert.deepEqual(parseFlakeInstallable('git+file:/srv/repo'), {
      ok: true,
      value: { source: { kind: 'local', scheme: 'git+file', path: '/srv/repo', query: '', dir: '' }, attrPath: '' },
    });
    // `..` is resolved (with symlinks) on the host before the allowed directories are compared
    assert.equal(parseFlakeInstallable('path:/srv/flakes/../../root#x').ok, true);
  });

  it('refuses options, host paths and anything else, naming the fix', () => {
    const bare =
      'write a local flake as "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes (the operator allows such directories), or use a remote flake such as "github:owner/repo#web", in the task\'s config { ... } block';
    const file =
      'write a local flake as "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes, or use a remote flake, in the task\'s config { ... } block';
    const refused: [string, string, string][] = [
      ['--version', 'starts with "-": Nix would read it as a command-line option, not a flake reference', FLAKE_FIX],
      ['--impure', 'starts with "-": Nix would read it as a command-line option, not a flake reference', FLAKE_FIX],
      ['-L', 'starts with "-": Nix would read it as a command-line option, not a flake reference', FLAKE_FIX],
      ['', 'is empty', FLAKE_FIX],
      ['/srv/x#web', "is a bare path: Nix would read that directory of the client (relative ones from the plugin's working directory)", bare],
      ['./x#web', "is a bare path: Nix would read that directory of the client (relative ones from the plugin's working directory)", bare],
      ['.', "is a bare path: Nix would read that directory of the client (relative ones from the plugin's working directory)", bare],
      ['~/app#web', "is a bare path: Nix would read that directory of the client (relative ones from the plugin's working directory)", bare],
      ['file:///srv/private/x.tar.gz#x', 'is a file: reference: Nix would read a file of the client', file],
      ['tarball+file:///srv/private/x.tar.gz#x', 'is a tarball+file: reference: Nix would read a file of the client', file],
      ['file+file:///srv/private/x#x', 'is a file+file: reference: Nix would read a file of the client', file],
      ['hg+file:///srv/private/repo#x', 'is a hg+file: reference: Nix would read a file of the client', file],
      [
        'path:root/x#x',
        "is a path: reference to a relative path (read from the plugin's working directory)",
        'write an absolute path, e.g. "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes, in the task\'s config { ... } block',
      ],
      [
        'path:/srv/%2e%2e/root#x',
        'names the path "/srv/%2e%2e/root", which has characters other than letters, digits and . _ + @ , = ~ / - (percent-encoding is not accepted)',
        FLAKE_FIX,
      ],
      ['git+file://host/srv/repo#x', 'names a host after git+file://; a local repository is git+file:///<absolute path>', FLAKE_FIX],
      [
        'http://example.org/x.tar.gz#x',
        'has the type "http:", which this driver does not accept (github:, gitlab:, sourcehut:, git+https:, git+ssh:, https: tarballs, registry ids, and path:/git+file: under allow_local_flakes)',
        FLAKE_FIX,
      ],
      [
        'git://example.org/x#x',
        'has the type "git:", which this driver does not accept (github:, gitlab:, sourcehut:, git+https:, git+ssh:, https: tarballs, registry ids, and path:/git+file: under allow_local_flakes)',
        FLAKE_FIX,
      ],
      [
        'https://example.org/app#x',
        'is an https URL that does not end in .zip, .tar, .tgz, .tar.gz, .tar.xz, .tar.bz2 or .tar.zst (a tarball flake)',
        FLAKE_FIX,
      ],
      ['git+ssh://-oProxyCommand=x/repo#x', 'is not git+ssh://[user@]<host>[:port]/<path>', FLAKE_FIX],
      ['git+https://user@example.org/repo#x', 'is not git+https://<host>[:port]/<path>', FLAKE_FIX],
      ['github:NixOS#x', 'is not github:<owner>/<repo>[/<branch, tag or commit>]', FLAKE_FIX],
      ['github:NixOS/nixpkgs/--upload-pack=x#x', 'names the branch, tag or commit "--upload-pack=x", which is not a valid Git name', FLAKE_FIX],
      [
        'github:o/r?dir=../../x#x',
        'has dir="../../x", which is not a valid dir (a relative path inside the flake, without "." or ".." segments)',
        "correct dir in flake in the task's config { ... } block",
      ],
      [
        'path:/srv/app?dir=/root#x',
        'has dir="/root", which is not a valid dir (a relative path inside the flake, without "." or ".." segments)',
        "correct dir in flake in the task's config { ... } block",
      ],
      [
        'github:o/r?url=file:///root#x',
        'has the parameter "url", which this kind of reference may not carry here (allowed: dir, ref, rev, narHash, host)',
        "remove it from flake in the task's config { ... } block",
      ],
      [
        'path:/srv/app?rev=abc#x',
        'has the parameter "rev", which this kind of reference may not carry here (allowed: dir, narHash)',
        "remove it from flake in the task's config { ... } block",
      ],
      ['github:o/r?ref=a&ref=b#x', 'has the parameter "ref" twice', "give it once in flake in the task's config { ... } block"],
      ['nixpkgs#--impure x', 'contains a space or a control character', FLAKE_FIX],
      ['nixpkgs#a;b', 'has the attribute path "a;b", which is not NAME(.NAME)* (letters, digits, _ \' + - or "quoted")', FLAKE_FIX],
      ['nixpkgs#', 'has the attribute path "", which is not NAME(.NAME)* (letters, digits, _ \' + - or "quoted")', FLAKE_FIX],
      ['#hello', 'has no flake reference before "#"', FLAKE_FIX],
      ['nix pkgs', 'contains a space or a control character', FLAKE_FIX],
      ['nixpkgs#hello\u0000', 'contains a space or a control character', FLAKE_FIX],
      ['github:o/r\u007f#x', 'contains a space or a control character', FLAKE_FIX],
      ['nixpkgs#a\tb', 'contains a space or a control character', FLAKE_FIX],
      ['nixpkgs\u00a0#x', 'contains a space or a control character', FLAKE_FIX],
      [
        '1nixpkgs#x',
        'is not a flake reference: not a known type (github:, gitlab:, sourcehut:, git+https:, git+ssh:, https: tarball, path:, git+file:) nor a registry id such as "nixpkgs" or "nixpkgs/nixos-23.11"',
        FLAKE_FIX,
      ],
      ['x'.repeat(2049), 'is longer than 2048 characters', FLAKE_FIX],
    ];
    for (const [text, cause, fix] of refused) {
      assert.deepEqual(parseFlakeInstallable(text), { ok: false, problem: { cause, fix } }, text);
    }
    assert.equal(
      FLAKE_FIX,
      'set flake to a flake installable such as "github:owner/repo#web", "git+https://example.org/repo#web", "nixpkgs#hello" or "path:/srv/app#web" under a directory listed in the client\'s allow_local_flakes, in the task\'s config { ... } block',
    );
  });
});

describe('local flakes', () => {
  const flake: LocalFlake = { kind: 'local', scheme: 'path', path: '/srv/flakes/app', query: '', dir: '' };
  const allocRoot = { dir: '/opt/nomad/data/alloc', real: '/opt/nomad/data/alloc' };
  const allowed = [{ dir: '/srv/flakes', real: '/srv/flakes' }];

  it('allows a directory inside an allowed one, compared resolved', () => {
    assert.equal(localFlakeProblem(flake, { realPaths: ['/srv/flakes/app'], allowed, allocRoot }), undefined);
    assert.equal(localFlakeProblem(flake, { realPaths: ['/data/flakes/app'], allowed: [{ dir: '/srv/flakes', real: '/data/flakes' }], allocRoot }), undefined);
  });

  it('refuses what is not allowed, a symlink out of the allowed dir, and the allocation dirs', () => {
    const fix =
      'build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web", or let jobs use that directory with allow_local_flakes = ["<dir>"] in the client\'s plugin "nix" { config { ... } } block';
    assert.deepEqual(localFlakeProblem(flake, { realPaths: ['/srv/flakes/app'], allowed: [], allocRoot }), {
      cause: "names /srv/flakes/app, a directory of the client, which the plugin's allow_local_flakes does not include (it lists no directory)",
      fix,
    });
    assert.deepEqual(localFlakeProblem(flake, { realPaths: ['/srv/private/secret'], allowed, allocRoot }), {
      cause: "resolves to /srv/private/secret (symlinks followed), which the plugin's allow_local_flakes does not include (it lists /srv/flakes)",
      fix,
    });
    assert.deepEqual(localFlakeProblem(flake, { realPaths: ['/srv/flakes/app', '/root'], allowed, allocRoot }), {
      cause: "resolves to /root (symlinks followed), which the plugin's allow_local_flakes does not include (it lists /srv/flakes)",
      fix,
    });
    const allocFix =
      'name a flake outside Nomad\'s data_dir; build the closure and copy it to the client (then set store_path), or use a remote flake such as "github:owner/repo#web"';
    const wide = [{ dir: '/opt', real: '/opt' }];
    assert.deepEqual(localFlakeProblem(flake, { realPaths: ['/opt/nomad/data/alloc/1234/main/secrets'], allowed: wide, allocRoot }), {
      cause:
        "resolves to /opt/nomad/data/alloc/1234/main/secrets (symlinks followed), inside Nomad's allocation directories (/opt/nomad/data/alloc): Nix would copy tasks' secrets into the world-readable store",
      fix: allocFix,
    });
    assert.deepEqual(localFlakeProblem(flake, { realPaths: ['/opt/nomad'], allowed: wide, allocRoot }), {
      cause:
        "resolves to /opt/nomad (symlinks followed), which holds Nomad's allocation directories (/opt/nomad/data/alloc): Nix would copy tasks' secrets into the world-readable store",
      fix: allocFix,
    });
    assert.deepEqual(localFlakeProblem(flake, { realPaths: [undefined], allowed, allocRoot }), {
      cause: 'names /srv/flakes/app, which does not exist on this client',
      fix: "check the path in flake in the task's config { ... } block",
    });
  });

  it('gives Nix the resolved path', () => {
    assert.equal(renderLocalInstallable(flake, '/data/flakes/app', 'web'), 'path:/data/flakes/app#web');
    assert.equal(renderLocalInstallable({ ...flake, scheme: 'git+file', query: 'ref=main' }, '/data/repo', ''), 'git+file:///data/repo?ref=main');
  });
});

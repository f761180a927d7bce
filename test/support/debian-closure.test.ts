import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDebianClosure, type DebianClosure, nginxClosure } from './debian-closure.js';

const q = (flag: string, path: string) =>
  execFileSync('nix-store', ['--query', flag, path], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .filter((l) => l !== '');
/** `/nix/store/<hash>-openssl-3.0.19` → `openssl-3.0.19`. */
const storeName = (path: string) => basename(path).slice(33);
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
const upstreamVersion = (pkg: string) => execFileSync('dpkg-query', ['-W', '-f=${source:Upstream-Version}', pkg], { encoding: 'utf8' });
const patchelf = (flag: string, path: string) => execFileSync('patchelf', [flag, path], { encoding: 'utf8' }).trim();

/** Runs `argv` in a bubblewrap root holding only `closure`'s store paths (no /usr, /lib, /etc). */
function inClosureOnly(paths: readonly string[], argv: readonly string[]) {
  const binds = paths.flatMap((p) => ['--ro-bind', p, p]);
  return spawnSync('bwrap', [...binds, '--unshare-user', '--uid', '65534', '--gid', '65534', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', ...argv], {
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('debian closures', { timeout: 300_000 }, () => {
  let roots: string;
  let nginx: DebianClosure;
  const dirs: string[] = [];
  before(() => {
    roots = mkdtempSync('/nix/var/nix/gcroots/debian-closure-test-');
    nginx = nginxClosure(roots);
  });
  after(() => {
    for (const d of [roots, ...dirs]) rmSync(d, { recursive: true, force: true });
  });

  it('nginx: glibc, each library package and the data are separate store paths whose references Nix records', () => {
    const nginxVersion = upstreamVersion('nginx');
    assert.equal(storeName(nginx.path), `nginx-${nginxVersion}`);
    assert.deepEqual(Object.keys(nginx.libraries).sort(), ['glibc', 'libxcrypt', 'openssl', 'pcre2', 'zlib']);
    assert.equal(storeName(nginx.libraries.glibc ?? ''), `glibc-${upstreamVersion('libc6')}`);
    assert.equal(storeName(nginx.libraries.openssl ?? ''), `openssl-${upstreamVersion('libssl3')}`);
    assert.deepEqual(nginx.requisites, q('--requisites', nginx.path).sort());
    assert.deepEqual(nginx.requisites, [nginx.path, ...Object.values(nginx.libraries), ...Object.values(nginx.data)].sort());
    // the graph: nginx → every library and its data; a library → glibc; glibc → nothing
    assert.deepEqual(
      q('--references', nginx.path).sort(),
      nginx.requisites.filter((p) => p !== nginx.path),
    );
    for (const name of ['libxcrypt', 'openssl', 'pcre2', 'zlib']) assert.deepEqual(q('--references', nginx.libraries[name] ?? ''), [nginx.libraries.glibc]);
    assert.deepEqual(q('--references', nginx.libraries.glibc ?? ''), []);
    assert.equal(readlinkSync(join(nginx.path, 'conf', 'mime.types')), `${nginx.data['nginx-mime-types']}/conf/mime.types`);
  });

  it('interpreter and RUNPATH point into the store only', () => {
    const bin = join(nginx.path, 'bin', 'nginx');
    assert.equal(patchelf('--print-interpreter', bin), `${nginx.libraries.glibc}/lib/ld-linux-x86-64.so.2`);
    const lib = (name: string) => `${nginx.libraries[name]}/lib`;
    assert.equal(patchelf('--print-rpath', bin), [lib('glibc'), lib('libxcrypt'), lib('openssl'), lib('pcre2'), lib('zlib')].join(':'));
    assert.equal(patchelf('--print-rpath', `${lib('openssl')}/libssl.so.3`), `${lib('glibc')}:$ORIGIN`);
  });

  it('runs with nothing but its closure, and fails without it', () => {
    const ok = inClosureOnly(nginx.requisites, [`${nginx.path}/bin/nginx`, '-V']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, new RegExp(`^nginx version: nginx/${upstreamVersion('nginx').replace(/\./g, '\\.')}$`, 'm'));
    const withoutGlibc = inClosureOnly(
      nginx.requisites.filter((p) => p !== nginx.libraries.glibc),
      [`${nginx.path}/bin/nginx`, '-V'],
    );
    assert.notEqual(withoutGlibc.status, 0);
    assert.match(withoutGlibc.stderr, /execvp .*nginx: No such file or directory/);
  });

  it('a warm call returns the cached manifest without building', () => {
    const manifest = join(nginx.gcRoot, 'manifest.json');
    const before = statSync(manifest).mtimeMs;
    const again = nginxClosure(roots);
    assert.deepEqual(again, nginx);
    assert.equal(statSync(manifest).mtimeMs, before);
  });

  it('data with ELF modules, symlinks in and out of the tree, and exclusions (the shape of Python’s lib-dynload)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'debian-closure-data-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'mods', '__pycache__'), { recursive: true });
    mkdirSync(join(dir, 'tests'));
    copyFileSync('/lib/x86_64-linux-gnu/libssl.so.3', join(dir, 'mods', 'ssl.so'));
    symlinkSync('ssl.so', join(dir, 'mods', 'ssl-link.so'));
    symlinkSync('/etc/nginx/mime.types', join(dir, 'mime.types'));
    writeFileSync(join(dir, 'mods', '__pycache__', 'x.pyc'), 'x');
    writeFileSync(join(dir, 'tests', 'big'), 'x');
    const closure = buildDebianClosure({
      name: 'withdata',
      programs: [{ from: '/usr/sbin/nginx', to: 'bin/nginx' }],
      data: [{ name: 'stdlib', paths: [{ from: dir, to: 'lib/stdlib', exclude: ['tests'], excludeNames: ['__pycache__'] }] }],
      gcRootsDir: roots,
    });
    const data = closure.data.stdlib ?? '';
    assert.equal(storeName(data), 'stdlib');
    const listing = execFileSync('find', ['.', '-printf', '%y %p\n'], { cwd: data, encoding: 'utf8' }).trim().split('\n').sort();
    assert.deepEqual(listing, [
      'd .',
      'd ./lib',
      'd ./lib/stdlib',
      'd ./lib/stdlib/mods',
      'f ./lib/stdlib/mime.types',
      'f ./lib/stdlib/mods/ssl.so',
      'l ./lib/stdlib/mods/ssl-link.so',
    ]);
    assert.equal(readlinkSync(join(data, 'lib/stdlib/mods/ssl-link.so')), 'ssl.so');
    assert.equal(patchelf('--print-rpath', join(data, 'lib/stdlib/mods/ssl.so')), `${closure.libraries.glibc}/lib:${closure.libraries.openssl}/lib`);
    assert.deepEqual(q('--references', data).sort(), [closure.libraries.glibc, closure.libraries.openssl].sort());
    assert.equal(readlinkSync(join(closure.path, 'lib', 'stdlib')), `${data}/lib/stdlib`);
  });

  const bad: [string, Parameters<typeof buildDebianClosure>[0], RegExp][] = [
    [
      'relative from',
      { name: 'x', programs: [{ from: 'usr/sbin/nginx', to: 'bin/nginx' }] },
      /^Error: failed to read closure spec: from "usr\/sbin\/nginx" is not an absolute path; fix: /,
    ],
    [
      'missing from',
      { name: 'x', programs: [{ from: '/nonexistent/prog', to: 'bin/x' }] },
      /^Error: failed to read closure spec: from "\/nonexistent\/prog" does not exist; fix: install the Debian package/,
    ],
    [
      'to escaping',
      { name: 'x', programs: [{ from: '/usr/sbin/nginx', to: '../bin/nginx' }] },
      /^Error: failed to read closure spec: to "\.\.\/bin\/nginx" of "\/usr\/sbin\/nginx" is not a relative path inside the store path/,
    ],
    [
      'bad name',
      { name: 'a b', programs: [{ from: '/usr/sbin/nginx', to: 'bin/nginx' }] },
      /^Error: failed to read closure spec: name "a b" is not a store name/,
    ],
    [
      'two on one path',
      {
        name: 'x',
        programs: [
          { from: '/usr/sbin/nginx', to: 'bin/x' },
          { from: '/bin/busybox', to: 'bin/x' },
        ],
      },
      /^Error: failed to read closure spec: two inputs of "x" land on "bin\/x"/,
    ],
  ];
  for (const [what, spec, expected] of bad)
    it(`rejects a bad spec (${what}), leaving no GC root`, () => {
      assert.throws(() => buildDebianClosure({ ...spec, gcRootsDir: roots }), expected);
      assert.deepEqual(
        execFileSync('ls', [roots], { encoding: 'utf8' })
          .split('\n')
          .filter((n) => n.startsWith('x-') || n.startsWith('a b')),
        [],
      );
    });

  it('a symlink pointing nowhere fails naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'debian-closure-broken-'));
    dirs.push(dir);
    symlinkSync('/nonexistent/target', join(dir, 'dangling'));
    assert.throws(
      () =>
        buildDebianClosure({
          name: 'broken',
          programs: [{ from: '/usr/sbin/nginx', to: 'bin/nginx' }],
          data: [{ name: 'd', paths: [{ from: dir, to: 'share/d' }] }],
          gcRootsDir: roots,
        }),
      new RegExp(`^Error: failed to copy closure input: symlink "${dir}/dangling" points nowhere \\(/nonexistent/target\\); fix: exclude it`),
    );
  });
});

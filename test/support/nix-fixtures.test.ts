import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildWithBusybox, busyboxApplets, busyboxPath, makeFlake, nixString, NO_SUBSTITUTERS } from './nix-fixtures.js';

const requisites = (path: string) => execFileSync('nix-store', ['--query', '--requisites', path], { encoding: 'utf8' }).trim().split('\n');

describe('nix fixtures', () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('adds busybox to the store once, with its applets', () => {
    const path = busyboxPath();
    assert.match(path, /^\/nix\/store\/[0-9a-z]{32}-busybox$/);
    assert.equal(busyboxPath(), path);
    assert.equal(readlinkSync(join(path, 'bin', 'sh')), 'busybox');
    assert.ok(busyboxApplets().includes('httpd'));
    assert.equal(execFileSync(join(path, 'bin', 'echo'), ['hi'], { encoding: 'utf8' }), 'hi\n');
  });

  it('quotes Nix strings', () => {
    assert.equal(nixString('a "b" \\ ${x} $y\n'), '"a \\"b\\" \\\\ \\${x} $y\\n"');
  });

  it('builds a derivation with busybox in its closure', () => {
    const out = buildWithBusybox(
      'fixture-web',
      'mkdir -p $out/bin; printf "#!$busybox/bin/sh\\necho \\"web ${1:-up}\\"\\n" > $out/bin/web; chmod +x $out/bin/web',
    );
    assert.match(out, /^\/nix\/store\/[0-9a-z]{32}-fixture-web$/);
    assert.deepEqual(requisites(out).sort(), [busyboxPath(), out].sort());
    assert.equal(readlinkSync(join(out, '.busybox')), busyboxPath());
    assert.equal(execFileSync(join(out, 'bin', 'web'), { encoding: 'utf8' }), 'web up\n');
    assert.equal(
      buildWithBusybox('fixture-web', 'mkdir -p $out/bin; printf "#!$busybox/bin/sh\\necho \\"web ${1:-up}\\"\\n" > $out/bin/web; chmod +x $out/bin/web'),
      out,
    );
  });

  it('makes a flake without inputs that builds offline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-fixture-flake-'));
    dirs.push(dir);
    const installable = makeFlake(dir, 'hello', 'mkdir $out; echo hello > $out/greeting');
    assert.equal(installable, `path:${dir}#hello`);
    const json = execFileSync('nix', ['build', '--no-link', '--json', '--extra-experimental-features', 'nix-command flakes', ...NO_SUBSTITUTERS, installable], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = (JSON.parse(json) as { outputs: { out: string } }[])[0]?.outputs.out ?? '';
    assert.match(out, /^\/nix\/store\/[0-9a-z]{32}-hello$/);
    assert.equal(readFileSync(join(out, 'greeting'), 'utf8'), 'hello\n');
    assert.deepEqual(requisites(out).sort(), [busyboxPath(), out].sort());
  });
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { EXEC_HELPER_PATH, findExecHelper } from './helper.js';

/**
 * Runs the built helper (npm run build compiles native/nix-exec.c) as the driver does, with
 * `fields` as its spec on fd 4, an extra open fd 3 and a host environment it must drop.
 */
function runHelper(fields: readonly string[], cwd = '/') {
  const dir = mkdtempSync(join(tmpdir(), 'nix-exec-spec-'));
  const specFile = join(dir, 'spec');
  writeFileSync(specFile, fields.map((f) => `${f}\0`).join(''));
  const extra = openSync('/etc/hostname', 'r');
  const spec = openSync(specFile, 'r');
  try {
    return spawnSync(EXEC_HELPER_PATH, ['4'], {
      cwd,
      encoding: 'utf8',
      env: { LD_PRELOAD: '', HOST_ONLY: '1' },
      stdio: ['ignore', 'pipe', 'pipe', extra, spec],
    });
  } finally {
    closeSync(extra);
    closeSync(spec);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('findExecHelper', () => {
  it('finds the static helper the build compiled, next to the build output', () => {
    assert.deepEqual(findExecHelper(), { found: true, path: EXEC_HELPER_PATH });
    assert.match(EXEC_HELPER_PATH, /\/dist\/native\/nix-exec$/);
  });

  it('says what is missing and how to fix it', () => {
    const missing = findExecHelper('/nonexistent/nix-exec');
    assert.equal(missing.found, false);
    assert.match(
      !missing.found ? missing.problem : '',
      /^the exec helper "\/nonexistent\/nix-exec" is missing or not executable .*; fix: install gcc and the static libc .* `npm run build`/,
    );
    const dynamic = findExecHelper('/bin/ls');
    assert.match(!dynamic.found ? dynamic.problem : '', /is dynamically linked \(loader .*\) and cannot run inside a closure-only root; fix: /);
  });
});

describe('nix-exec (native/nix-exec.c)', () => {
  it('runs the command with exactly the given environment, in the given cwd, with no fd above 2', () => {
    const result = runHelper(['/etc', '2', 'PATH=/usr/bin:/bin', 'A=b c', 'sh', '-c', 'env; pwd; ls /proc/self/fd']);
    assert.equal(result.status, 0, result.stderr);
    // sh adds PWD (and busybox/dash may add nothing else); the host's variables are gone
    const lines = result.stdout.trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.includes('=')).sort(), ['A=b c', 'PATH=/usr/bin:/bin', 'PWD=/etc']);
    assert.ok(lines.includes('/etc'));
    // ls itself holds one fd (3) for the directory it lists: no inherited fd 3 (/etc/hostname) or 4 (the spec)
    const fds = lines.filter((l) => /^\d+$/.test(l));
    assert.deepEqual(fds, ['0', '1', '2', '3']);
    const ls = runHelper(['/', '1', 'PATH=/usr/bin:/bin', 'readlink', '/proc/self/fd/3']);
    assert.notEqual(ls.stdout.trim(), '/etc/hostname');
  });

  it('changes to the cwd after the process is where it runs: a symlink in it resolves where the helper runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-exec-'));
    try {
      mkdirSync(join(dir, 'real'));
      symlinkSync('real', join(dir, 'link'));
      const result = runHelper([join(dir, 'link'), '1', 'PATH=/bin', '/bin/pwd', '-P']);
      assert.equal(result.stdout.trim(), join(dir, 'real'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('exits like a shell: 127 not found, 126 not executable, 125 for a cwd it cannot enter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nix-exec-'));
    try {
      writeFileSync(join(dir, 'data'), 'x', { mode: 0o644 });
      const notFound = runHelper(['/', '1', `PATH=${dir}`, 'nope']);
      assert.equal(notFound.status, 127);
      assert.equal(
        notFound.stderr,
        `failed to exec in task: command "nope" is not in the task's PATH (${dir}); fix: run a program of the task's closure or give its absolute path\n`,
      );
      assert.equal(runHelper(['/', '0', '/nonexistent/x']).status, 127);
      const denied = runHelper(['/', '1', `PATH=${dir}`, 'data']);
      assert.equal(denied.status, 126);
      assert.match(denied.stderr, /^failed to exec in task: cannot run "data": Permission denied; fix: /);
      assert.equal(runHelper(['/', '0', join(dir, 'data')]).status, 126);
      const cwd = runHelper(['/nonexistent', '0', '/bin/true']);
      assert.equal(cwd.status, 125);
      assert.match(cwd.stderr, /^failed to exec in task: cannot change to the task's working directory "\/nonexistent": No such file or directory; fix: /);
      assert.equal(runHelper(['/', 'x', '/bin/true']).status, 125);
      assert.equal(runHelper([]).status, 125);
      const noFd = spawnSync(EXEC_HELPER_PATH, ['/', '0', '/bin/true'], { encoding: 'utf8' });
      assert.equal(noFd.status, 125);
      assert.match(noFd.stderr, /^failed to exec in task: nix-exec needs <spec fd>; fix: /);
      assert.equal(runHelper(['/', '5', 'A=1', '/bin/true']).status, 125);
      assert.equal(runHelper(['/', '1', 'NOEQUALS', '/bin/true']).status, 125);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

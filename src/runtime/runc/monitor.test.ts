import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { monitorArgs, parseExitFile, parsePidFile, runcLogErrors } from './monitor.js';

describe('runc monitor', () => {
  it('records the exit code of the command it runs, atomically, with its arguments passed through', () => {
    const dir = mkdtempSync(join(tmpdir(), 'monitor-'));
    try {
      // a fake runc that reports its arguments and exits 5
      const fake = join(dir, 'fake-runc');
      writeFileSync(fake, '#!/bin/sh\necho "$@" > "$(dirname "$0")/args"\nexit 5\n');
      chmodSync(fake, 0o755);
      execFileSync('/bin/sh', monitorArgs(fake, '/run/x', dir, 'task-1'));
      assert.equal(parseExitFile(readFileSync(join(dir, 'exit.json'), 'utf8')), 5);
      assert.equal(
        readFileSync(join(dir, 'args'), 'utf8').trim(),
        `--root /run/x --log ${dir}/runc.log --log-format json run --keep --bundle ${dir} --pid-file ${dir}/init.pid task-1`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses exit and pid files strictly', () => {
    assert.equal(parseExitFile('{"exit-code": 143}\n'), 143);
    assert.equal(parseExitFile('{"exit-code": -1}'), undefined);
    assert.equal(parseExitFile('{"exit-code": 1'), undefined);
    assert.equal(parsePidFile('4242'), 4242);
    assert.equal(parsePidFile('1'), undefined);
    assert.equal(parsePidFile('42x'), undefined);
    assert.equal(parsePidFile(''), undefined);
  });

  it("extracts error messages from runc's JSON log", () => {
    const log = [
      '{"level":"warning","msg":"something minor","time":"2026-11-22T10:00:00Z"}',
      '{"level":"error","msg":"runc run failed: unable to start container process: exec: \\"/dev/init\\": permission denied","time":"2026-11-22T10:00:00Z"}',
      'not json',
      '',
    ].join('\n');
    assert.deepEqual(runcLogErrors(log), ['runc run failed: unable to start container process: exec: "/dev/init": permission denied', 'not json']);
  });
});

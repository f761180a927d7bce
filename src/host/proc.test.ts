import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { childPids, firstChild, isRunning, killProcessTree, parseEnviron, pathInRootOf, processTree, readEnviron } from './proc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(probe: () => T | undefined, what: string): Promise<T> {
  for (let waited = 0; waited < 5_000; waited += 10) {
    const value = probe();
    if (value !== undefined) return value;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('parseEnviron', () => {
  it('reads NUL-separated KEY=value entries; values may hold "=" and newlines', () => {
    assert.deepEqual(parseEnviron('PATH=/a:/b\0EMPTY=\0EQ=a=b\0NL=x\ny\0'), { PATH: '/a:/b', EMPTY: '', EQ: 'a=b', NL: 'x\ny' });
  });

  it('skips entries without a name and lets a later duplicate win', () => {
    assert.deepEqual(parseEnviron('=x\0junk\0A=1\0A=2\0\0'), { A: '2' });
    assert.deepEqual(parseEnviron(''), {});
  });
});

describe('process tree helpers', () => {
  it("read a process's environment, its first child and its whole tree, and kill all of it", async () => {
    // a shell whose first child is a sleep, and a second one forked later in its own group
    const child = spawn('/bin/sh', ['-c', 'sleep 30 & sleep 0.2; setsid sleep 30 & wait'], {
      env: { PATH: '/usr/bin:/bin', MARK: 'proc-test' },
      stdio: 'ignore',
    });
    const pid = child.pid ?? -1;
    try {
      assert.equal(readEnviron(pid)?.MARK, 'proc-test');
      const children = await until(() => (childPids(pid).length === 2 ? childPids(pid) : undefined), 'two children');
      const first = firstChild(pid);
      assert.ok(first !== undefined && children.includes(first));
      assert.deepEqual(readEnviron(first)?.MARK, 'proc-test');
      // the first started is the lower start time: the one forked before the 0.2 s pause
      const second = children.find((c) => c !== first) ?? -1;
      assert.ok(first < second || children.length === 2);
      assert.deepEqual(new Set(processTree(pid)), new Set([pid, ...children]));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      killProcessTree(pid);
      await exited;
      await until(() => (children.every((c) => !isRunning(c)) ? true : undefined), 'the children to die');
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(readEnviron(pid), undefined);
    assert.deepEqual(processTree(pid), []);
    assert.equal(firstChild(pid), undefined);
  });

  it("pathInRootOf names a path through the process's root", () => {
    assert.equal(pathInRootOf(42, '/nix/store/x/bin/sh'), join('/proc/42', 'root', 'nix/store/x/bin/sh'));
  });
});

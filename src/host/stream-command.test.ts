import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { runStreaming } from './stream-command.js';

const alive = (pattern: string) => spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).stdout.trim() !== '';

describe('runStreaming', () => {
  it('streams stderr lines and returns stdout and the exit code', async () => {
    const lines: string[] = [];
    const result = await runStreaming('sh', ['-c', 'echo out; echo one >&2; printf "two\\n\\nthree" >&2; exit 3'], { onStderrLine: (l) => lines.push(l) });
    assert.deepEqual(lines, ['one', 'two', '', 'three']);
    assert.deepEqual(result, { stdout: 'out\n', stderrTail: ['one', 'two', '', 'three'], exitCode: 3, signal: null, timedOut: false, aborted: false });
  });

  it('fails when the command does not exist', async () => {
    await assert.rejects(runStreaming('/nonexistent/nix', []), { message: 'failed to run /nonexistent/nix: it does not exist' });
  });

  it('stops the command when aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = performance.now();
    const result = await runStreaming('sleep', ['30'], { signal: controller.signal });
    assert.equal(result.aborted, true);
    assert.equal(result.signal, 'SIGTERM');
    assert.ok(performance.now() - started < 2_000);
  });

  it('does not start work for an aborted signal', async () => {
    const result = await runStreaming('sleep', ['30'], { signal: AbortSignal.abort() });
    assert.equal(result.aborted, true);
  });

  it('times out, and kills a command that ignores SIGTERM with the process groups it started', async () => {
    const marker = `${randomBytes(4).toString('hex')}`;
    // The child runs a grandchild in its own session, as Nix runs its builders.
    const script = `trap "" TERM; setsid sh -c 'sleep 30; echo ${marker}' & sleep 30; echo ${marker}`;
    const started = performance.now();
    const result = await runStreaming('sh', ['-c', script], { timeoutMs: 200, killGraceMs: 500 });
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(performance.now() - started < 3_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(`echo ${marker}`), false, 'a grandchild still runs');
  });
});

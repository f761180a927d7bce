import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { execedCommand, exitOf, runInTask, startInTask, type ExecCommand } from './exec-in-task.js';

const HOST_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const sh = (script: string): ExecCommand => ({ file: '/bin/sh', args: ['-c', script], env: HOST_ENV });
const alive = (pattern: string) => spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).stdout.trim() !== '';

describe('exitOf', () => {
  it("reports a signal N as exit code 128+N, as the task's own exit is reported", () => {
    assert.deepEqual(exitOf(0, null), { exitCode: 0, signal: 0 });
    assert.deepEqual(exitOf(4, null), { exitCode: 4, signal: 0 });
    assert.deepEqual(exitOf(null, 'SIGKILL'), { exitCode: 137, signal: 9 });
    assert.deepEqual(exitOf(0, 15), { exitCode: 143, signal: 15 });
    assert.deepEqual(exitOf(130, 0), { exitCode: 130, signal: 2 }, 'a relay that reports a signalled command as 128+N');
  });
});

describe('runInTask', () => {
  it('captures stdout and stderr apart, with empty input, and the exit code', async () => {
    const result = await runInTask(sh('echo out; echo err >&2; cat; exit 4'), { timeoutMs: 10_000 });
    assert.deepEqual(
      { ...result, stdout: result.stdout.toString(), stderr: result.stderr.toString() },
      { exitCode: 4, signal: 0, stdout: 'out\n', stderr: 'err\n', timedOut: false },
    );
  });

  it('kills the command and everything it started when the timeout passes', async () => {
    const marker = `sleep 29.${randomBytes(4).readUInt32BE(0)}`;
    const started = performance.now();
    const result = await runInTask(sh(`${marker} & setsid ${marker} & echo started; wait`), { timeoutMs: 300 });
    assert.equal(result.timedOut, true);
    assert.equal(result.signal, 9);
    assert.equal(result.stdout.toString(), 'started\n');
    assert.ok(performance.now() - started < 3_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(marker), false, 'no process of the command is left');
  });

  it("runs the command's cleanup once it has exited", async () => {
    let cleaned = false;
    const cleanup = async () => {
      cleaned = true;
    };
    await runInTask({ ...sh('true'), cleanup }, { timeoutMs: 0 });
    assert.equal(cleaned, true);
  });
});

describe('execedCommand', () => {
  it('is true only for a command line that is neither the plugin, the raw-terminal shell nor empty (inside execve)', () => {
    const own = '/usr/bin/node\0/srv/dist/src/main.js\0';
    assert.equal(execedCommand('', own), false);
    assert.equal(execedCommand(own, own), false);
    assert.equal(execedCommand('/bin/sh\0-c\0stty raw -echo || exit 125\nexec "$@"\0nix-exec-raw\0/usr/bin/nsenter\0', own), false);
    assert.equal(execedCommand('/usr/bin/nsenter\0--target\x0a3\0', own), true);
  });
});

describe('startInTask', () => {
  it('relays input and EOF through pipes', async () => {
    const chunks: Buffer[] = [];
    const session = await startInTask(sh('cat; echo done'), { tty: false, onStdout: (d) => chunks.push(d), onStderr: () => undefined });
    session.write(Buffer.from('data\n'));
    session.closeStdin();
    assert.deepEqual(await session.exited, { exitCode: 0, signal: 0 });
    assert.equal(Buffer.concat(chunks).toString(), 'data\ndone\n');
  });

  it('gives a terminal of the given size that follows resizes, raw before the command starts', async () => {
    const chunks: Buffer[] = [];
    const session = await startInTask(sh('tty; stty size; read line; echo "got $line"; sleep 0.3; stty size; exit 3'), {
      tty: true,
      columns: 100,
      rows: 30,
      onStdout: (d) => chunks.push(d),
      onStderr: () => assert.fail('a terminal has no separate stderr'),
    });
    // written at once: it must reach the command unechoed (the terminal is raw before the command runs)
    session.write(Buffer.from('hello\n'));
    setTimeout(() => session.resize(120, 40), 150);
    assert.deepEqual(await session.exited, { exitCode: 3, signal: 0 });
    const lines = Buffer.concat(chunks)
      .toString()
      .split(/\r?\n/)
      .filter((l) => l !== '');
    assert.match(lines[0] ?? '', /^\/dev\/pts\/\d+$/);
    assert.deepEqual(lines.slice(1), ['30 100', 'got hello', '40 120']);
  });

  it('kill() ends a terminal session with its process group', async () => {
    const session = await startInTask(sh('sleep 30'), { tty: true, onStdout: () => undefined, onStderr: () => undefined });
    setTimeout(() => session.kill(), 100);
    assert.deepEqual(await session.exited, { exitCode: 137, signal: 9 });
  });
});

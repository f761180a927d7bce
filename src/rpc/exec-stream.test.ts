import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import type { ExecOutput, ExecSession, NixDriver } from '../driver/driver.js';
import type { ExecTaskStreamingRequest__Output } from '../gen/hashicorp/nomad/plugins/drivers/proto/ExecTaskStreamingRequest.js';
import type { ExecTaskStreamingResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/ExecTaskStreamingResponse.js';
import { createLogger } from '../log/logger.js';
import { execStreamHandler, exitFrames, parseExecFrame } from './exec-stream.js';

const frame = (fields: Partial<ExecTaskStreamingRequest__Output>): ExecTaskStreamingRequest__Output => ({
  setup: null,
  tty_size: null,
  stdin: null,
  ...fields,
});

describe('parseExecFrame', () => {
  it('reads setup, resize, input and EOF, in that order, and nothing from a heartbeat', () => {
    assert.deepEqual(parseExecFrame(frame({ setup: { task_id: 'a/web/1', command: ['sh', '-c', 'x'], tty: true } })), [
      { kind: 'setup', taskId: 'a/web/1', command: ['sh', '-c', 'x'], tty: true },
    ]);
    assert.deepEqual(parseExecFrame(frame({ tty_size: { width: 120, height: 40 }, stdin: { data: Buffer.from('hi'), close: true } })), [
      { kind: 'resize', columns: 120, rows: 40 },
      { kind: 'stdin', data: Buffer.from('hi') },
      { kind: 'stdin-close' },
    ]);
    assert.deepEqual(parseExecFrame(frame({})), []);
    assert.deepEqual(parseExecFrame(frame({ stdin: { data: Buffer.alloc(0), close: false }, tty_size: { width: 0, height: 0 } })), []);
  });
});

describe('exitFrames', () => {
  it('closes both streams, then reports the exit with a result', () => {
    assert.deepEqual(exitFrames({ exitCode: 130, signal: 2 }), [
      { stdout: { close: true } },
      { stderr: { close: true } },
      { exited: true, result: { exit_code: 130, signal: 2, oom_killed: false } },
    ]);
  });
});

/** A grpc-js duplex call: Nomad's frames in, the plugin's frames recorded. */
class FakeCall extends EventEmitter {
  readonly written: ExecTaskStreamingResponse[] = [];
  ended = false;
  write(message: ExecTaskStreamingResponse): boolean {
    this.written.push(message);
    return true;
  }
  end(): void {
    this.ended = true;
    this.emit('finished');
  }
}

/** A session that records what reaches it and exits when told. */
function fakeSession() {
  const applied: string[] = [];
  let finish: (exit: { exitCode: number; signal: number }) => void = () => undefined;
  const session: ExecSession = {
    pid: 7,
    write: (data) => applied.push(`stdin:${Buffer.from(data).toString()}`),
    closeStdin: () => applied.push('eof'),
    resize: (c, r) => applied.push(`resize:${c}x${r}`),
    kill: () => applied.push('kill'),
    pause: () => applied.push('pause'),
    resume: () => applied.push('resume'),
    exited: new Promise((resolve) => (finish = resolve)),
  };
  return { session, applied, finish: (exit: { exitCode: number; signal: number }) => finish(exit) };
}

const logger = createLogger({ module: 'test', level: 'error', sink: () => undefined });

describe('execStreamHandler', () => {
  it('starts the command from the setup frame, applies frames that arrived meanwhile in order, and ends with the exit', async () => {
    const fake = fakeSession();
    let output: ExecOutput | undefined;
    let release: () => void = () => undefined;
    const starting = new Promise<void>((resolve) => (release = resolve));
    const driver = {
      startExec: async (taskId: string, command: readonly string[], tty: boolean, out: ExecOutput) => {
        assert.deepEqual([taskId, command, tty], ['a/web/1', ['sh'], true]);
        output = out;
        await starting;
        return fake.session;
      },
    } as unknown as NixDriver;
    const call = new FakeCall();
    execStreamHandler(driver, logger)(call as unknown as grpc.ServerDuplexStream<ExecTaskStreamingRequest__Output, ExecTaskStreamingResponse>);
    call.emit('data', frame({ setup: { task_id: 'a/web/1', command: ['sh'], tty: true } }));
    call.emit('data', frame({ tty_size: { width: 80, height: 25 } }));
    call.emit('data', frame({ stdin: { data: Buffer.from('tty\n'), close: false } }));
    call.emit('data', frame({}));
    release();
    await new Promise((r) => setImmediate(r));
    call.emit('data', frame({ stdin: { data: Buffer.alloc(0), close: true } }));
    output?.stdout(Buffer.from('/dev/pts/0\r\n'));
    output?.stderr(Buffer.from('warning\n'));
    const finished = new Promise((r) => call.once('finished', r));
    fake.finish({ exitCode: 3, signal: 0 });
    await finished;
    assert.deepEqual(fake.applied, ['resize:80x25', 'stdin:tty\n', 'eof']);
    assert.deepEqual(call.written, [
      { stdout: { data: Buffer.from('/dev/pts/0\r\n') } },
      { stderr: { data: Buffer.from('warning\n') } },
      ...exitFrames({ exitCode: 3, signal: 0 }),
    ]);
    assert.equal(call.ended, true);
  });

  it("pauses the command's output while gRPC's buffer is full, and resumes on drain", async () => {
    const fake = fakeSession();
    let output: ExecOutput | undefined;
    const startExec = async (_t: string, _c: readonly string[], _tty: boolean, out: ExecOutput) => {
      output = out;
      return fake.session;
    };
    const driver = { startExec } as unknown as NixDriver;
    const call = new FakeCall();
    let full = true;
    const write = call.write.bind(call);
    call.write = (message) => {
      write(message);
      return !full;
    };
    execStreamHandler(driver, logger)(call as unknown as grpc.ServerDuplexStream<ExecTaskStreamingRequest__Output, ExecTaskStreamingResponse>);
    call.emit('data', frame({ setup: { task_id: 'a/web/1', command: ['yes'], tty: false } }));
    await new Promise((r) => setImmediate(r));
    output?.stdout(Buffer.from('y\n'));
    output?.stdout(Buffer.from('y\n'));
    assert.deepEqual(fake.applied, ['pause']);
    full = false;
    call.emit('drain');
    assert.deepEqual(fake.applied, ['pause', 'resume']);
    assert.equal(call.written.length, 2, 'nothing is dropped');
    fake.finish({ exitCode: 0, signal: 0 });
  });

  it("kills the command when Nomad's client goes away", async () => {
    const fake = fakeSession();
    const driver = { startExec: async () => fake.session } as unknown as NixDriver;
    const call = new FakeCall();
    execStreamHandler(driver, logger)(call as unknown as grpc.ServerDuplexStream<ExecTaskStreamingRequest__Output, ExecTaskStreamingResponse>);
    call.emit('data', frame({ setup: { task_id: 'a/web/1', command: ['sh'], tty: false } }));
    await new Promise((r) => setImmediate(r));
    call.emit('cancelled');
    assert.deepEqual(fake.applied, ['kill']);
    fake.finish({ exitCode: 137, signal: 9 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(call.written, [], 'nothing is written to a cancelled call');
  });

  it("fails the call with the driver's error when the command cannot start", async () => {
    const { failure } = await import('../errors.js');
    const driver = {
      startExec: async () => Promise.reject(failure('exec in task', 'the task has exited', { code: 'failed_precondition' })),
    } as unknown as NixDriver;
    const call = new FakeCall();
    const errors: { code?: number; details?: string }[] = [];
    call.on('error', (e: { code?: number; details?: string }) => errors.push(e));
    execStreamHandler(driver, logger)(call as unknown as grpc.ServerDuplexStream<ExecTaskStreamingRequest__Output, ExecTaskStreamingResponse>);
    call.emit('data', frame({ setup: { task_id: 'a/web/1', command: ['sh'], tty: false } }));
    await new Promise((r) => setImmediate(r));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.details, 'failed to exec in task: the task has exited');
    assert.equal(errors[0]?.code, 9); // FAILED_PRECONDITION
  });
});

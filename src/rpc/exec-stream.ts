/**
 * ExecTaskStreaming (`nomad alloc exec`) on the wire. Nomad's client sends a `setup` frame
 * (task id, command, tty) first, then `stdin` data, `stdin.close` for EOF, `tty_size` on every
 * resize, and empty frames as heartbeats. The plugin answers with `stdout`/`stderr` data frames,
 * one `close` frame per stream once the command has exited, and a last frame with
 * `exited: true` and the `result` (Nomad's client reads that as the end), then ends the call.
 * Frames that arrive while the command is still being started wait for it, in order.
 */
import type * as grpc from '@grpc/grpc-js';
import { errorMessage, failure } from '../errors.js';
import type { ExecSession, NixDriver } from '../driver/driver.js';
import type { ExecTaskStreamingRequest__Output } from '../gen/hashicorp/nomad/plugins/drivers/proto/ExecTaskStreamingRequest.js';
import type { ExecTaskStreamingResponse } from '../gen/hashicorp/nomad/plugins/drivers/proto/ExecTaskStreamingResponse.js';
import type { Logger } from '../log/logger.js';
import { toExitResult } from './codec.js';
import { failStream } from './handlers.js';

/** One thing a request frame asks for. */
export type ExecFrame =
  | { readonly kind: 'setup'; readonly taskId: string; readonly command: readonly string[]; readonly tty: boolean }
  | { readonly kind: 'stdin'; readonly data: Buffer }
  | { readonly kind: 'stdin-close' }
  | { readonly kind: 'resize'; readonly columns: number; readonly rows: number };

/**
 * What one request frame asks for, in the order to apply it: setup, resize, input, EOF (a
 * frame may carry several; a heartbeat carries none). Pure.
 */
export function parseExecFrame(message: ExecTaskStreamingRequest__Output): ExecFrame[] {
  const frames: ExecFrame[] = [];
  if (message.setup !== null && message.setup !== undefined) {
    frames.push({ kind: 'setup', taskId: message.setup.task_id, command: [...message.setup.command], tty: message.setup.tty });
  }
  const size = message.tty_size;
  if (size !== null && size !== undefined && size.width > 0 && size.height > 0) frames.push({ kind: 'resize', columns: size.width, rows: size.height });
  const stdin = message.stdin;
  if (stdin !== null && stdin !== undefined) {
    if (stdin.data !== undefined && stdin.data.length > 0) frames.push({ kind: 'stdin', data: Buffer.from(stdin.data) });
    if (stdin.close) frames.push({ kind: 'stdin-close' });
  }
  return frames;
}

export const stdoutFrame = (data: Buffer): ExecTaskStreamingResponse => ({ stdout: { data } });
export const stderrFrame = (data: Buffer): ExecTaskStreamingResponse => ({ stderr: { data } });

/** The frames that end a session: both streams closed, then exited with the result. Pure. */
export function exitFrames(exit: { readonly exitCode: number; readonly signal: number }): ExecTaskStreamingResponse[] {
  return [{ stdout: { close: true } }, { stderr: { close: true } }, { exited: true, result: toExitResult({ ...exit, oomKilled: false }) }];
}

/** Applies an input frame to a running session. */
function apply(session: ExecSession, frame: Exclude<ExecFrame, { kind: 'setup' }>): void {
  switch (frame.kind) {
    case 'stdin':
      session.write(frame.data);
      return;
    case 'stdin-close':
      session.closeStdin();
      return;
    case 'resize':
      session.resize(frame.columns, frame.rows);
      return;
  }
}

/** The grpc-js handler: one session per call, killed when Nomad's client goes away. */
export function execStreamHandler(
  driver: NixDriver,
  logger: Logger,
): grpc.handleBidiStreamingCall<ExecTaskStreamingRequest__Output, ExecTaskStreamingResponse> {
  return (call) => {
    let session: ExecSession | undefined;
    let started = false;
    let over = false;
    const waiting: Exclude<ExecFrame, { kind: 'setup' }>[] = [];
    // output waits while gRPC's buffer is full, so a command printing without end cannot fill the plugin's memory
    let paused = false;
    const send = (message: ExecTaskStreamingResponse) => {
      if (over || call.write(message) || paused || session === undefined) return;
      paused = true;
      session.pause();
      call.once('drain', () => {
        paused = false;
        session?.resume();
      });
    };
    const fail = (error: unknown) => {
      if (over) return;
      over = true;
      logger.warn('stream failed', { rpc: 'ExecTaskStreaming', err: errorMessage(error) });
      failStream(call, error);
    };
    const gone = () => {
      over = true;
      session?.kill();
    };
    call.on('cancelled', gone);
    call.on('error', gone);

    const start = async (setup: Extract<ExecFrame, { kind: 'setup' }>) => {
      try {
        const running = await driver.startExec(setup.taskId, setup.command, setup.tty, {
          stdout: (data) => send(stdoutFrame(data)),
          stderr: (data) => send(stderrFrame(data)),
        });
        session = running;
        if (over) running.kill(); // the client left while the command was starting
        for (const frame of waiting.splice(0)) apply(running, frame);
        const exit = await running.exited;
        for (const frame of exitFrames(exit)) send(frame);
        if (!over) {
          over = true;
          call.end();
        }
      } catch (error) {
        fail(error);
      }
    };

    call.on('data', (message: ExecTaskStreamingRequest__Output) => {
      for (const frame of parseExecFrame(message)) {
        if (frame.kind === 'setup') {
          if (!started) {
            started = true;
            void start(frame);
          }
        } else if (session !== undefined) {
          apply(session, frame);
        } else {
          waiting.push(frame);
        }
      }
    });
    call.on('end', () => {
      if (!started)
        fail(
          failure('exec in task', 'the stream ended before its setup frame', {
            code: 'invalid_argument',
            fix: 'send a setup frame (task_id, command, tty) first',
          }),
        );
    });
  };
}

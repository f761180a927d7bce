/**
 * Wraps driver methods as grpc-js handlers: errors become statuses through rpc/status.ts and
 * every failed call is logged once, with the RPC name.
 */
import type * as grpc from '@grpc/grpc-js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { toGrpcError } from './status.js';

export function unary<Req, Res>(
  logger: Logger,
  rpc: string,
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request, call))
      .then(
        (response) => callback(null, response),
        (error: unknown) => {
          logger.warn('rpc failed', { rpc, err: errorMessage(error) });
          callback(toGrpcError(error) as grpc.ServiceError);
        },
      );
  };
}

/**
 * A server stream fed by `produce`, which gets an AbortSignal that fires when the client
 * cancels. The stream ends when `produce` returns; an exception becomes the call's status.
 */
export function serverStream<Req, Res>(
  logger: Logger,
  rpc: string,
  produce: (request: Req, write: (message: Res) => void, signal: AbortSignal) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const controller = new AbortController();
    const abort = () => controller.abort();
    call.on('cancelled', abort);
    call.on('close', abort);
    call.on('error', abort);
    const write = (message: Res) => {
      if (!controller.signal.aborted) call.write(message);
    };
    produce(call.request, write, controller.signal).then(
      () => {
        if (!controller.signal.aborted) call.end();
      },
      (error: unknown) => {
        logger.warn('stream failed', { rpc, err: errorMessage(error) });
        if (!controller.signal.aborted) failStream(call, error);
      },
    );
  };
}

/** Resolves when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Ends a streaming call with the status for `error` (grpc-js sends an emitted error's status). */
export function failStream(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>, error: unknown): void {
  call.emit('error', toGrpcError(error));
}

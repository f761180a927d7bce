/**
 * The single mapping from plugin errors to gRPC statuses (the way Nomad's own Go adapter,
 * plugins/drivers/server.go, does it):
 * - a DriverError's code picks the status code, its message is the status message (Nomad puts
 *   that text in `nomad alloc status`);
 * - FAILED_PRECONDITION always carries a RecoverableError detail in the
 *   `grpc-status-details-bin` trailer, so Nomad knows whether to retry a StartTask and whether
 *   to stop re-opening a TaskStats stream;
 * - anything that is not a DriverError is INTERNAL.
 * UNAVAILABLE and CANCELLED are never produced: Nomad reads them as "the plugin has shut down".
 */
import * as grpc from '@grpc/grpc-js';
import jspb from 'google-protobuf';
import { errorMessage, isDriverError, truncate, type ErrorCode } from '../errors.js';

const CODES: Readonly<Record<ErrorCode, grpc.status>> = {
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  not_found: grpc.status.NOT_FOUND,
  already_exists: grpc.status.ALREADY_EXISTS,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  // not UNAVAILABLE, which Nomad treats as a dead plugin
  unavailable: grpc.status.FAILED_PRECONDITION,
  unimplemented: grpc.status.UNIMPLEMENTED,
  deadline_exceeded: grpc.status.DEADLINE_EXCEEDED,
  internal: grpc.status.INTERNAL,
};

export const RECOVERABLE_ERROR_TYPE_URL = 'type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError';
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

/** hashicorp.nomad.plugins.shared.structs.RecoverableError { bool recoverable = 1; } */
function encodeRecoverableError(recoverable: boolean): Uint8Array {
  const writer = new jspb.BinaryWriter();
  if (recoverable) writer.writeBool(1, true);
  return writer.getResultBuffer();
}

/** google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; } */
export function encodeStatusWithRecoverable(code: number, message: string, recoverable: boolean): Uint8Array {
  const any = new jspb.BinaryWriter();
  any.writeString(1, RECOVERABLE_ERROR_TYPE_URL);
  any.writeBytes(2, encodeRecoverableError(recoverable));
  const status = new jspb.BinaryWriter();
  status.writeInt32(1, code);
  status.writeString(2, message);
  status.writeBytes(3, any.getResultBuffer());
  return status.getResultBuffer();
}

/** Reads back what encodeStatusWithRecoverable wrote (tests and our own client use it). */
export function decodeRecoverable(statusBytes: Uint8Array): boolean | undefined {
  const status = new jspb.BinaryReader(statusBytes);
  while (status.nextField()) {
    if (status.isEndGroup()) break;
    if (status.getFieldNumber() !== 3) {
      status.skipField();
      continue;
    }
    const any = new jspb.BinaryReader(status.readBytes());
    let typeUrl = '';
    let value: Uint8Array = new Uint8Array();
    while (any.nextField()) {
      if (any.isEndGroup()) break;
      if (any.getFieldNumber() === 1) typeUrl = any.readString();
      else if (any.getFieldNumber() === 2) value = any.readBytes();
      else any.skipField();
    }
    if (typeUrl !== RECOVERABLE_ERROR_TYPE_URL) continue;
    const detail = new jspb.BinaryReader(value);
    let recoverable = false;
    while (detail.nextField()) {
      if (detail.isEndGroup()) break;
      if (detail.getFieldNumber() === 1) recoverable = detail.readBool();
      else detail.skipField();
    }
    return recoverable;
  }
  return undefined;
}

/**
 * At most this many characters of an error message go into a status (the grpc-message
 * trailer): some clients drop trailers of more than a few KiB, and the message then never
 * reaches `nomad alloc status`. Messages quote values bounded (errors.ts quote()); this is the
 * backstop for any other text.
 */
export const STATUS_MESSAGE_MAX_CHARS = 4096;

/** `text` with every lone UTF-16 surrogate replaced by U+FFFD. */
export function wellFormed(text: string): string {
  return text.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
}

/** The gRPC error object for any thrown value; its message bounded (STATUS_MESSAGE_MAX_CHARS). */
export function toGrpcError(error: unknown): Partial<grpc.StatusObject> {
  // well-formed: grpc-js percent-encodes the message into a trailer, and a lone surrogate
  // (e.g. from JSON.parse's message about a cut emoji) makes that throw: the call never answered
  const message = wellFormed(truncate(errorMessage(error), STATUS_MESSAGE_MAX_CHARS));
  if (!isDriverError(error)) return { code: grpc.status.INTERNAL, details: message };
  const code = CODES[error.code];
  if (code !== grpc.status.FAILED_PRECONDITION) return { code, details: message };
  const metadata = new grpc.Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(encodeStatusWithRecoverable(code, message, error.recoverable)));
  return { code, details: message, metadata };
}

/**
 * The one error type of the plugin. Every failure that can reach Nomad is a DriverError whose
 * message follows one grammar:
 *
 *     failed to <verb> <object>: <cause>[; fix: <what the operator can do>]
 *
 * The gRPC layer maps `code` to a status code once (rpc/status.ts); nothing else knows gRPC.
 */
export type ErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'unavailable'
  | 'unimplemented'
  /** A command the driver ran for Nomad (ExecTask) outlived the timeout Nomad gave it. */
  | 'deadline_exceeded'
  | 'internal';

export interface FailureOptions {
  readonly code?: ErrorCode;
  /** How the operator fixes it; appended as "; fix: ...". */
  readonly fix?: string;
  /** Nomad may retry a recoverable StartTask failure on the same node. */
  readonly recoverable?: boolean;
  readonly cause?: unknown;
}

export class DriverError extends Error {
  override readonly name = 'DriverError';
  readonly code: ErrorCode;
  readonly recoverable: boolean;

  constructor(message: string, options: FailureOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? 'internal';
    this.recoverable = options.recoverable ?? false;
  }
}

/**
 * Builds a DriverError in the project's grammar.
 * `what` is "<verb> <object>" (e.g. `decode plugin config`), `cause` says what was wrong.
 */
export function failure(what: string, cause: string, options: FailureOptions = {}): DriverError {
  const fix = options.fix === undefined ? '' : `; fix: ${options.fix}`;
  return new DriverError(`failed to ${what}: ${cause}${fix}`, options);
}

/**
 * The fix of an `internal` failure, which no input of the job or the plugin config caused: the
 * plugin logs its context (the RPC, the task id and the error) in the Nomad client's log.
 */
export const INTERNAL_FIX =
  "find the nix plugin's lines about it in the Nomad client's log, mend what they name on the client, then restart the allocation (nomad alloc restart)";

/**
 * `error` as a failure of `what`: itself when it is a DriverError already, else an `internal`
 * DriverError with its message and INTERNAL_FIX, so no bare Error reaches Nomad.
 */
export function asFailure(what: string, error: unknown): DriverError {
  if (isDriverError(error)) return error;
  return failure(what, errorMessage(error), { code: 'internal', fix: INTERNAL_FIX, cause: error });
}

export function isDriverError(value: unknown): value is DriverError {
  return value instanceof DriverError;
}

/** The text of any thrown value, for messages and logs. */
export function errorMessage(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Nomad's own text for an unknown task id (plugins/drivers/errors.go); kept verbatim. */
export const TASK_NOT_FOUND_MESSAGE = 'task not found for given id';

/** At most this many characters of a user-supplied value appear in a message (quote()). */
export const QUOTE_MAX_CHARS = 200;

/**
 * `text` itself when it has at most `max` characters (UTF-16 code units), else its first `max`
 * characters, an ellipsis and the full length: `abc… (200000 characters)`. A surrogate pair is
 * never split. Pure.
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // keep a surrogate pair whole
  return `${text.slice(0, end)}… (${text.length} characters)`;
}

/**
 * Quotes a user-supplied value for an error message, the way the rest of the messages do: a
 * string as JSON, an object as its JSON. Bounded: a value longer than QUOTE_MAX_CHARS is cut
 * there, with an ellipsis and its full length (`"aaaa…" (200000 characters)`), so a huge
 * job-controlled value never makes a huge gRPC status or log line.
 */
export function quote(value: unknown): string {
  if (typeof value === 'string') {
    if (value.length <= QUOTE_MAX_CHARS) return JSON.stringify(value);
    return `${JSON.stringify(truncate(value, QUOTE_MAX_CHARS).replace(/… \(\d+ characters\)$/, '…'))} (${value.length} characters)`;
  }
  if (value === null || value === undefined) return String(value);
  let text: string;
  if (typeof value === 'object') {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  } else {
    text = String(value);
  }
  return truncate(text, QUOTE_MAX_CHARS);
}

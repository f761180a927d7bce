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

/** Quotes a user-supplied value for an error message, the way the rest of the messages do. */
export function quote(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}

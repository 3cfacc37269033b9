/**
 * The errors the client throws: the same classes, codes and statuses as the Python SDK
 * (memsvc/errors.py), so an error crosses HTTP as the same class in either language.
 *
 *     MemsvcError
 *     ├── NotFound            a cube or record does not exist (or is not visible to you)
 *     │   ├── CubeNotFound
 *     │   └── RecordNotFound
 *     ├── InvalidInput        the request itself is wrong: empty text, bad k, bad UTF-8...
 *     │   └── PayloadTooLarge a request body over the configured limit
 *     ├── Conflict            the request clashes with existing state (duplicate cube name...)
 *     │   ├── IdempotencyKeyReused  an add's idempotency key was used for another request
 *     │   └── DuplicateRecord       the cube refuses exact duplicates; details.id is it
 *     ├── AuthError           missing, bad or revoked credentials
 *     ├── RateLimited         too many requests; details.retry_after says how long to wait
 *     │   └── Busy            the server's local LM has more work queued than it may hold
 *     ├── PermissionDenied    known caller, but not allowed (writing to a shared cube)
 *     └── StorageError        the database or an index file failed underneath, or the
 *         │                   server cannot be reached
 *         └── ModelUnavailable
 *
 * A response is read back by its `error.code` when the code names a class, else by its
 * HTTP status (`STATUS_BY_ERROR`, plus 400 as InvalidInput), else as MemsvcError.
 */

/** Base of every memsvc error; `code` is stable and travels over HTTP. */
export class MemsvcError extends Error {
  static readonly code: string = "error";
  /** The error's code as the server sent it (the class's code for client-side errors). */
  readonly code: string;
  readonly details: Record<string, unknown>;
  /** The HTTP status of the response, or undefined when the client raised it itself. */
  readonly status: number | undefined;

  constructor(
    message: string,
    options: {
      details?: Record<string, unknown>;
      status?: number;
      code?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? (new.target as typeof MemsvcError).code;
    this.details = options.details ?? {};
    this.status = options.status;
  }
}

export class NotFound extends MemsvcError {
  static override readonly code: string = "not_found";
}
export class CubeNotFound extends NotFound {
  static override readonly code: string = "cube_not_found";
}
export class RecordNotFound extends NotFound {
  static override readonly code: string = "record_not_found";
}
export class InvalidInput extends MemsvcError {
  static override readonly code: string = "invalid_input";
}
export class PayloadTooLarge extends InvalidInput {
  static override readonly code: string = "payload_too_large";
}
export class Conflict extends MemsvcError {
  static override readonly code: string = "conflict";
}
/** The idempotency key was first used for a different add (409): a retry must repeat its
 * request exactly, and a new request needs a new key. */
export class IdempotencyKeyReused extends Conflict {
  static override readonly code: string = "idempotency_key_reused";
}
/** The cube refuses exact duplicates and an active record already holds this text for the
 * same user and session (409); `details.id` is that record. */
export class DuplicateRecord extends Conflict {
  static override readonly code: string = "duplicate_record";
}
export class AuthError extends MemsvcError {
  static override readonly code: string = "unauthorized";
}
/** Too many requests for this API key; `details.retry_after` says how long to wait (s). */
export class RateLimited extends MemsvcError {
  static override readonly code: string = "rate_limited";
}
/** The local LM has more work queued than it may hold (429 with Retry-After). */
export class Busy extends RateLimited {
  static override readonly code: string = "busy";
}
export class PermissionDenied extends MemsvcError {
  static override readonly code: string = "forbidden";
}
export class StorageError extends MemsvcError {
  static override readonly code: string = "storage_error";
}
/** The local LM of the activation and parametric tiers is missing or failed to load. */
export class ModelUnavailable extends StorageError {
  static override readonly code: string = "model_unavailable";
}

export type ErrorClass = typeof MemsvcError;

/** Every class, base first (the order of the tree above). */
export const ERROR_CLASSES: readonly ErrorClass[] = [
  MemsvcError,
  NotFound,
  CubeNotFound,
  RecordNotFound,
  InvalidInput,
  PayloadTooLarge,
  Conflict,
  IdempotencyKeyReused,
  DuplicateRecord,
  AuthError,
  RateLimited,
  Busy,
  PermissionDenied,
  StorageError,
  ModelUnavailable,
];

/** The one table of class <-> HTTP status; a subclass answers with its nearest ancestor's. */
export const STATUS_BY_ERROR: ReadonlyMap<ErrorClass, number> = new Map<ErrorClass, number>([
  [NotFound, 404],
  [InvalidInput, 422],
  [PayloadTooLarge, 413],
  [Conflict, 409],
  [AuthError, 401],
  [PermissionDenied, 403],
  [RateLimited, 429],
  [StorageError, 503],
]);

const BY_CODE = new Map<string, ErrorClass>(ERROR_CLASSES.map((cls) => [cls.code, cls]));
const BY_STATUS = new Map<number, ErrorClass>([
  ...[...STATUS_BY_ERROR].map(([cls, status]) => [status, cls] as [number, ErrorClass]),
  [400, InvalidInput], // a request the HTTP layer itself could not read
]);

/** The class an error response stands for: by its `code`, else by its status. */
export function errorClass(code: string | null | undefined, status: number): ErrorClass {
  return (code ? BY_CODE.get(code) : undefined) ?? BY_STATUS.get(status) ?? MemsvcError;
}

/** The HTTP status an error class answers with (500 for one outside the table). */
export function httpStatus(cls: ErrorClass): number {
  for (let c: unknown = cls; c && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    const status = STATUS_BY_ERROR.get(c as ErrorClass);
    if (status !== undefined) return status;
  }
  return 500;
}

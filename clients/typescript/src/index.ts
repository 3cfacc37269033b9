/**
 * memsvc's TypeScript client: `MemoryClient` (the Python `MemoryClient`'s methods over
 * fetch), its error classes, and the API's types generated from the server's /openapi.json.
 */
export { MemoryClient, raiseForError } from "./client.js";
export type { ClientOptions } from "./client.js";
export { ROUTE_HEADER, routeKey } from "./route.js";
export {
  AuthError,
  Busy,
  Conflict,
  CubeNotFound,
  DuplicateRecord,
  ERROR_CLASSES,
  IdempotencyKeyReused,
  InvalidInput,
  MemsvcError,
  ModelUnavailable,
  NotFound,
  PayloadTooLarge,
  PermissionDenied,
  RateLimited,
  RecordNotFound,
  STATUS_BY_ERROR,
  StorageError,
  errorClass,
  httpStatus,
} from "./errors.js";
export type { ErrorClass } from "./errors.js";
export type * from "./types.js";
export type { components, operations, paths } from "./schema.js";

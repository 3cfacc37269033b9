/**
 * The client's types, all derived from the generated `schema.ts` (openapi-typescript over the
 * server's /openapi.json): when the API changes, regenerating it changes these too.
 *
 * Results keep the API's snake_case field names, and so do options that are request fields
 * (`user_id`, `max_tokens`), as the wire has them; only method names are camelCase.
 */
import type { components, operations } from "./schema.js";

type Schemas = components["schemas"];

export type MemoryRecord = Schemas["MemoryRecord"];
export type Hit = Schemas["Hit"];
export type Page = Schemas["Page"];
export type Cube = Schemas["Cube"];
export type RecordVersion = Schemas["RecordVersion"];
export type MaintenanceRun = Schemas["MaintenanceRun"];
export type GraphPage = Schemas["GraphPage"];
export type GraphNode = Schemas["GraphNode"];
export type GraphEdge = Schemas["GraphEdge"];
export type Neighbor = Schemas["Neighbor"];
export type Generation = Schemas["Generation"];
export type Message = Schemas["Message"];
export type Filters = Schemas["Filters"];

/** What `add` returns: the records, in input order. `replayed` is true when the add's
 * idempotency key repeated an earlier add: nothing was written, and these are the records
 * that add wrote (as they are now). */
export type Added = MemoryRecord[] & { readonly replayed: boolean };

/** A JSON request body of an operation, as the server's schema has it. */
export type RequestBody<Op extends keyof operations> = operations[Op] extends {
  requestBody: { content: { "application/json": infer B } };
}
  ? B
  : never;
/** An operation's query parameters. */
export type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;

/** A point in time: a Date, an ISO 8601 string (naive means UTC) or Unix seconds. */
export type When = Date | string | number;

/** Filters with their times given as any `When`. */
export type FiltersInput = Omit<Filters, "since" | "until"> & {
  since?: When | null;
  until?: When | null;
};

/** A retrieval recipe: a preset name ("fast", "balanced", "deep"), a compact string
 * ("dense=1+keyword=1|rrf20") or an object {channels, fusion, rrf_k, candidates, k}. */
export type Recipe = NonNullable<RequestBody<"search_memories">["recipe"]>;

/** What every call takes besides its own options. */
export interface CallOptions {
  /** Abort the request (the client's timeout applies as well). */
  signal?: AbortSignal;
}

type AddBody = RequestBody<"add_memories">;

export type AddOptions = Omit<AddBody, "text" | "messages" | "timestamp"> &
  CallOptions & {
    text?: AddBody["text"];
    messages?: Message[] | null;
    timestamp?: When | null;
    /** Sent as the `Idempotency-Key` header (1-255 visible ASCII characters, e.g. a UUID):
     * a repeat with the same key and request returns the first add's records without
     * writing (`replayed`); with another request it is an IdempotencyKeyReused. */
    idempotency_key?: string;
  };

export type RecallOptions = Omit<RequestBody<"search_memories">, "query" | "at" | "filters"> &
  CallOptions & {
    filters?: FiltersInput | null;
    /** Reference time: what was true and retained then (default now). */
    at?: When | null;
  };

export type UpdateOptions = Omit<
  RequestBody<"update_memory">,
  "event_time" | "valid_from" | "valid_to"
> &
  CallOptions & {
    event_time?: When | null;
    valid_from?: When | null;
    valid_to?: When | null;
  };

export type Status = NonNullable<Query<"list_memories">["status"]>;

/** The filters a listing takes over HTTP (`user_id` is an option of its own). */
export type ListFilters = Omit<FiltersInput, "user_id" | "statuses">;

export interface ListOptions extends CallOptions {
  user_id?: string | null;
  cube?: string | null;
  filters?: ListFilters | null;
  status?: Status;
  limit?: number;
  cursor?: string | null;
}

export type CreateCubeOptions = Omit<RequestBody<"create_cube">, "name"> & CallOptions;

export interface GraphOptions extends CallOptions {
  /** Edge types to keep (part_of, mentions, follows, related, supersedes). */
  types?: string | readonly string[] | null;
  limit?: number;
  cursor?: string | null;
}

export interface NeighborsOptions extends CallOptions {
  types?: string | readonly string[] | null;
  depth?: number;
}

export type GenerateOptions = Omit<RequestBody<"generate">, "prompt" | "filters"> &
  CallOptions & { filters?: FiltersInput | null };

export type Tier = RequestBody<"promote">["tier"];

export type ConsolidateOptions = Omit<RequestBody<"consolidate">, "record_ids"> &
  CallOptions & {
    user_id?: string | null;
    record_ids?: readonly string[] | null;
  };

/** Bytes so far and the total when known: what a transfer reports as it goes. */
export type Progress = (bytes: number, total: number | null) => void;

/** Record, entity and edge counts of an export (the X-Memsvc-* headers). */
export interface ExportCounts {
  records: number;
  entities: number;
  edges: number;
}

export interface CubeExport {
  /** The .memcube file (gzip), to pipe wherever it goes; read it once. */
  body: ReadableStream<Uint8Array>;
  counts: ExportCounts;
  /** Content-Length, when the server sent one. */
  size: number | null;
}

/** What an import uploads: a web stream (Node; in browsers needs HTTP/2), or bytes. */
export type CubeFile = ReadableStream<Uint8Array> | Blob | ArrayBuffer | Uint8Array;

export interface ExportOptions extends CallOptions {
  progress?: Progress;
}

export interface ImportOptions extends CallOptions {
  /** Import under this cube name instead of the file's. */
  cube?: string | null;
  /** The file's size, sent as Content-Length when `file` is a stream. */
  size?: number;
  progress?: Progress;
}

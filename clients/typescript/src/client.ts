/**
 * `MemoryClient`: memsvc over HTTP from TypeScript, with the Python `MemoryClient`'s methods
 * (camelCase), arguments, results and error classes. It needs only the global `fetch` and web
 * streams, so it runs unchanged in Node 20+ and in browsers.
 *
 *     import { MemoryClient } from "memsvc";
 *
 *     const mem = new MemoryClient("http://127.0.0.1:8000", { apiKey: "msk_..." });
 *     await mem.add("Alice moved to Berlin.", { user_id: "alice" });
 *     const hits = await mem.recall("where does alice live", { user_id: "alice" });
 */
import { InvalidInput, MemsvcError, StorageError, errorClass } from "./errors.js";
import { ROUTE_HEADER, routeKey, routedCube } from "./route.js";
import type {
  AddOptions,
  Added,
  CallOptions,
  ConsolidateOptions,
  CreateCubeOptions,
  Cube,
  CubeExport,
  CubeFile,
  ExportOptions,
  FiltersInput,
  GenerateOptions,
  Generation,
  GraphOptions,
  GraphPage,
  Hit,
  ImportOptions,
  ListOptions,
  MaintenanceRun,
  MemoryRecord,
  Neighbor,
  NeighborsOptions,
  Page,
  Progress,
  RecallOptions,
  RecordVersion,
  Tier,
  UpdateOptions,
  When,
} from "./types.js";

export interface ClientOptions {
  /** Sent as `Authorization: Bearer <key>`; default the MEMSVC_API_KEY environment variable
   * where there is one (Node). */
  apiKey?: string | null;
  /** Milliseconds a call may take (default 60 000). Calls that run minutes of LM work on the
   * server (generate, promote, consolidate) and cube uploads have no timeout. */
  timeoutMs?: number;
  /** The fetch to send with (default the global one): a test double, or one with a proxy. */
  fetch?: typeof globalThis.fetch;
}

type QueryValue = string | number | boolean | readonly string[] | null | undefined;

interface Call extends CallOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  headers?: Record<string, string>;
  /** No client-side timeout (the server does minutes of work). */
  slow?: boolean;
  /** Hand the response back as soon as its headers are in (the timeout stops there). */
  stream?: boolean;
  /** A raw request body (a cube upload), sent as it is. */
  raw?: BodyInit;
  /** The cube the call concerns: its routing token goes in `X-Memsvc-Cube`. */
  cube?: string | undefined;
}

/** The aborter's reason when the client's own timeout fires (a user's abort is rethrown). */
class Timeout extends Error {}

const DEFAULT_URL = "http://127.0.0.1:8000";

export class MemoryClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof globalThis.fetch;

  constructor(baseUrl: string = DEFAULT_URL, options: ClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    const apiKey = options.apiKey ?? envApiKey();
    this.#headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  }

  // --- records ------------------------------------------------------------------------

  /** Store text (one record per string) or chat messages (one record per message). */
  add(text: string | readonly string[], options: AddOptions): Promise<Added>;
  add(options: AddOptions): Promise<Added>;
  async add(
    textOrOptions: string | readonly string[] | AddOptions,
    maybeOptions?: AddOptions,
  ): Promise<Added> {
    const options: AddOptions =
      typeof textOrOptions === "string" || Array.isArray(textOrOptions)
        ? { ...maybeOptions!, text: textOrOptions as string | string[] }
        : (textOrOptions as AddOptions);
    const { signal, idempotency_key, timestamp, ...fields } = options;
    const headers: Record<string, string> = {};
    if (idempotency_key != null) {
      if (typeof idempotency_key !== "string" || !/^[!-~]{1,255}$/.test(idempotency_key)) {
        throw new InvalidInput(
          "idempotency_key must be 1-255 visible ASCII characters (no spaces), e.g. a UUID",
          { details: { field: "idempotency_key" } },
        );
      }
      headers["Idempotency-Key"] = idempotency_key;
    }
    const body = { ...fields, timestamp: iso(timestamp, "timestamp") };
    const cube = routedCube(fields.cube, fields.user_id);
    return this.#send("POST", "/v1/memories", { body, headers, signal, cube }, async (resp) => {
      const records = (await resp.json()) as MemoryRecord[];
      const replayed = resp.headers.get("idempotent-replayed")?.toLowerCase() === "true";
      return Object.defineProperty(records, "replayed", {
        value: replayed,
        enumerable: false,
      }) as Added;
    });
  }

  /** The `k` most relevant records, best first, each with how every channel ranked it
   * (`hit.explain`). `filters`, `at` and `recipe` as in the Python SDK. */
  async recall(query: string, options: RecallOptions): Promise<Hit[]> {
    const { signal, filters, at, k, ...fields } = options;
    const body = {
      query,
      ...fields,
      k: k ?? 10,
      filters: filtersBody(filters),
      at: iso(at, "at"),
    };
    const cube = routedCube(fields.cube, fields.user_id);
    return this.#json("POST", "/v1/memories/search", { body, signal, cube });
  }

  async get(id: string, options: CallOptions = {}): Promise<MemoryRecord> {
    return this.#json("GET", `/v1/memories/${seg(id)}`, options);
  }

  /** Change a record; the previous version stays in its history. */
  async update(id: string, options: UpdateOptions): Promise<MemoryRecord> {
    const { signal, event_time, valid_from, valid_to, ...fields } = options;
    const body = {
      ...fields,
      event_time: iso(event_time, "event_time"),
      valid_from: iso(valid_from, "valid_from"),
      valid_to: iso(valid_to, "valid_to"),
    };
    return this.#json("PATCH", `/v1/memories/${seg(id)}`, { body, signal });
  }

  /** Soft delete by default; `hard: true` purges the record, its history and what was
   * derived from it. */
  async delete(id: string, options: CallOptions & { hard?: boolean } = {}): Promise<void> {
    const query = options.hard ? { hard: "true" } : {};
    await this.#json("DELETE", `/v1/memories/${seg(id)}`, { query, signal: options.signal });
  }

  /** Every version of a record, oldest first (version 1 is the record as created). */
  async history(id: string, options: CallOptions = {}): Promise<RecordVersion[]> {
    return this.#json("GET", `/v1/memories/${seg(id)}/history`, options);
  }

  /** The supersession chain through the record, oldest first. */
  async lineage(id: string, options: CallOptions = {}): Promise<MemoryRecord[]> {
    return this.#json("GET", `/v1/memories/${seg(id)}/lineage`, options);
  }

  /** Bring back an archived or soft-deleted record. */
  async restore(id: string, options: CallOptions = {}): Promise<MemoryRecord> {
    return this.#json("POST", `/v1/memories/${seg(id)}/restore`, options);
  }

  /** One page of a cube's records, oldest first; pass `next_cursor` back as `cursor`. */
  async list(options: ListOptions = {}): Promise<Page> {
    const { signal, filters, status, limit, ...rest } = options;
    const query: Record<string, QueryValue> = {
      ...rest,
      status: status ?? "active",
      limit: limit ?? 50,
      ...listFilterParams(filters),
    };
    const cube = routedCube(rest.cube, rest.user_id);
    return this.#json("GET", "/v1/memories", { query, signal, cube });
  }

  /** Every record `list` would give, page after page (`limit` is the page size). */
  async *listAll(options: ListOptions = {}): AsyncGenerator<MemoryRecord, void, undefined> {
    let cursor = options.cursor ?? null;
    do {
      const page = await this.list({ ...options, cursor });
      yield* page.items;
      cursor = page.next_cursor ?? null;
    } while (cursor !== null);
  }

  // --- graph --------------------------------------------------------------------------

  /** A page of the cube's graph: edges (oldest first) and the nodes they touch. */
  async graph(cube: string, options: GraphOptions = {}): Promise<GraphPage> {
    const query = {
      types: csv(options.types),
      limit: options.limit ?? 200,
      cursor: options.cursor,
    };
    return this.#json("GET", `/v1/cubes/${seg(cube)}/graph`, {
      query,
      signal: options.signal,
      cube,
    });
  }

  /** Records and entities within `depth` hops of a record. */
  async neighbors(id: string, options: NeighborsOptions = {}): Promise<Neighbor[]> {
    const query = { types: csv(options.types), depth: options.depth ?? 1 };
    return this.#json("GET", `/v1/memories/${seg(id)}/neighbors`, {
      query,
      signal: options.signal,
    });
  }

  // --- tiers and the local LM ---------------------------------------------------------

  /** Answer a prompt with the server's local LM and the user's recalled memories. */
  async generate(prompt: string, options: GenerateOptions): Promise<Generation> {
    const { signal, filters, k, ...fields } = options;
    const body = { prompt, ...fields, k: k ?? 5, filters: filtersBody(filters) };
    const cube = routedCube(fields.cube, fields.user_id);
    return this.#json("POST", "/v1/generate", { body, signal, slow: true, cube });
  }

  /** Build a KV cache (activation) or a LoRA adapter (parametric) from plaintext records. */
  async promote(
    ids: string | readonly string[],
    options: CallOptions & { tier?: Tier } = {},
  ): Promise<MemoryRecord> {
    const record_ids = typeof ids === "string" ? [ids] : [...ids];
    const body = { record_ids, tier: options.tier ?? "activation" };
    return this.#json("POST", "/v1/memories/promote", { body, signal: options.signal, slow: true });
  }

  /** Delete a tier record with its file, or the caches built from a plaintext record;
   * returns the ids removed. */
  async demote(id: string, options: CallOptions = {}): Promise<string[]> {
    const out = await this.#json<{ removed: string[] }>(
      "POST",
      `/v1/memories/${seg(id)}/demote`,
      options,
    );
    return out.removed;
  }

  /** Train a LoRA adapter on a cube's memories (minutes on a CPU): a parametric record. */
  async consolidate(cube: string | null, options: ConsolidateOptions = {}): Promise<MemoryRecord> {
    const { signal, user_id, record_ids, ...fields } = options;
    if (cube == null) {
      if (user_id == null)
        throw new InvalidInput("give user_id or cube", { details: { field: "user_id" } });
      cube = `user:${user_id}`;
    }
    const body = { ...fields, record_ids: record_ids == null ? undefined : [...record_ids] };
    return this.#json("POST", `/v1/cubes/${seg(cube)}/consolidate`, {
      body,
      signal,
      slow: true,
      cube,
    });
  }

  // --- cubes --------------------------------------------------------------------------

  async createCube(name: string, options: CreateCubeOptions = {}): Promise<Cube> {
    const { signal, ...fields } = options;
    return this.#json("POST", "/v1/cubes", { body: { name, ...fields }, signal, cube: name });
  }

  async getCube(cube: string, options: CallOptions = {}): Promise<Cube> {
    return this.#json("GET", `/v1/cubes/${seg(cube)}`, { ...options, cube });
  }

  /** Your cubes, then cubes other tenants shared with you (access "read"). */
  async listCubes(options: CallOptions = {}): Promise<Cube[]> {
    return this.#json("GET", "/v1/cubes", options);
  }

  async deleteCube(cube: string, options: CallOptions = {}): Promise<void> {
    await this.#json("DELETE", `/v1/cubes/${seg(cube)}`, { ...options, cube });
  }

  /** Grant another tenant read-only access; they reach it by the cube's id. */
  async shareCube(cube: string, tenant: string, options: CallOptions = {}): Promise<Cube> {
    return this.#json("POST", `/v1/cubes/${seg(cube)}/share`, {
      body: { tenant },
      signal: options.signal,
      cube,
    });
  }

  /** Revoke a tenant's read access (a no-op if it had none). */
  async unshareCube(cube: string, tenant: string, options: CallOptions = {}): Promise<Cube> {
    return this.#json("DELETE", `/v1/cubes/${seg(cube)}/share/${seg(tenant)}`, {
      ...options,
      cube,
    });
  }

  /** Maintenance now on one cube, or on each cube this key's tenant owns. */
  async maintain(cube?: string | null, options: CallOptions = {}): Promise<MaintenanceRun[]> {
    const runs: MaintenanceRun[] = [];
    for (const name of cube ? [cube] : await this.#owned(options)) {
      runs.push(
        await this.#json("POST", `/v1/cubes/${seg(name)}/maintain`, { ...options, cube: name }),
      );
    }
    return runs;
  }

  /** The latest finished maintenance run of one cube, or of each cube the tenant owns. */
  async maintenanceRuns(
    cube?: string | null,
    options: CallOptions = {},
  ): Promise<MaintenanceRun[]> {
    const runs: MaintenanceRun[] = [];
    for (const name of cube ? [cube] : await this.#owned(options)) {
      const run = await this.#json<MaintenanceRun | null>(
        "GET",
        `/v1/cubes/${seg(name)}/maintenance`,
        { ...options, cube: name },
      );
      if (run !== null) runs.push(run);
    }
    return runs;
  }

  /** The cube as one portable .memcube file, streamed: pipe `body` where it goes (a file, a
   * Blob, another server's `importCube`). `counts` are known before the body is read. */
  async exportCube(cube: string, options: ExportOptions = {}): Promise<CubeExport> {
    const resp = await this.#send(
      "POST",
      `/v1/cubes/${seg(cube)}/export`,
      { signal: options.signal, stream: true, cube },
      (r) => r,
    );
    const header = (name: string): number => Number(resp.headers.get(`x-memsvc-${name}`) ?? 0);
    const length = resp.headers.get("content-length");
    const size = length === null ? null : Number(length);
    const body = this.#watch(resp.body ?? new Blob([]).stream(), size, options.progress, true);
    return {
      body,
      size,
      counts: { records: header("records"), entities: header("entities"), edges: header("edges") },
    };
  }

  /** Upload a .memcube file (as `exportCube` gives it): a web stream, a Blob or bytes.
   * In browsers pass a Blob or File (they stream uploads only over HTTP/2). */
  async importCube(file: CubeFile, options: ImportOptions = {}): Promise<Cube> {
    const { progress, size } = options;
    let raw: BodyInit;
    if (file instanceof ReadableStream) {
      raw = this.#watch(file, size ?? null, progress, false);
    } else {
      const total = file instanceof Blob ? file.size : file.byteLength;
      raw = file as BodyInit;
      progress?.(total, total);
    }
    return this.#json("POST", "/v1/cubes/import", {
      raw,
      query: { cube: options.cube },
      headers: { "Content-Type": "application/gzip" },
      signal: options.signal,
      slow: true,
      cube: options.cube ?? undefined,
    });
  }

  // --- I/O ----------------------------------------------------------------------------

  async #owned(options: CallOptions): Promise<string[]> {
    // By id: a default cube's name holds its user id, which may contain a '/'.
    return (await this.listCubes(options)).filter((c) => c.access === "owner").map((c) => c.id);
  }

  async #json<T>(method: string, path: string, call: Call): Promise<T> {
    return this.#send(method, path, call, async (resp) =>
      resp.status === 204 ? (undefined as T) : ((await resp.json()) as T),
    );
  }

  /** Send one request and `read` its response, both under the timeout; an error response
   * or a transport failure becomes a MemsvcError. */
  async #send<T>(
    method: string,
    path: string,
    call: Call,
    read: (resp: Response) => Promise<T> | T,
  ): Promise<T> {
    const url = this.baseUrl + path + queryString(call.query);
    const headers: Record<string, string> = { ...this.#headers, ...call.headers };
    if (typeof call.cube === "string" && call.cube) headers[ROUTE_HEADER] = routeKey(call.cube);
    let body: BodyInit | undefined = call.raw;
    if (call.body !== undefined) {
      body = encodeJson(call.body);
      headers["Content-Type"] = "application/json";
    }
    const aborter = new AbortController();
    const user = call.signal;
    const onAbort = (): void => aborter.abort(user?.reason);
    if (user?.aborted) onAbort();
    user?.addEventListener("abort", onAbort, { once: true });
    const timer = call.slow
      ? undefined
      : setTimeout(() => aborter.abort(new Timeout()), this.timeoutMs);
    try {
      const init: RequestInit & { duplex?: "half" } = {
        method,
        headers,
        body,
        signal: aborter.signal,
      };
      if (body instanceof ReadableStream) init.duplex = "half"; // a streamed upload
      const resp = await this.#fetch(url, init);
      if (resp.status >= 400) await raiseForError(resp);
      return await read(resp);
    } catch (exc) {
      throw this.#translate(exc, aborter.signal);
    } finally {
      clearTimeout(timer);
      if (!call.stream) user?.removeEventListener("abort", onAbort);
    }
  }

  #translate(exc: unknown, signal: AbortSignal): unknown {
    if (exc instanceof MemsvcError) return exc;
    if (signal.aborted && signal.reason instanceof Timeout) {
      return new StorageError(
        `cannot reach memsvc at ${this.baseUrl}: no answer within ${this.timeoutMs / 1000} s`,
        { cause: exc },
      );
    }
    if (signal.aborted) return signal.reason; // the caller's own abort, as they gave it
    const why =
      exc instanceof Error
        ? exc.cause instanceof Error
          ? exc.cause.message
          : exc.message
        : String(exc);
    return new StorageError(`cannot reach memsvc at ${this.baseUrl}: ${why}`, { cause: exc });
  }

  /** A stream that passes `source` through, reporting bytes so far to `progress`; a
   * download's dropped connection becomes a StorageError (an upload's source fails as is). */
  #watch(
    source: ReadableStream<Uint8Array>,
    total: number | null,
    progress: Progress | undefined,
    download: boolean,
  ): ReadableStream<Uint8Array> {
    const reader = source.getReader();
    let bytes = 0;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            return;
          }
          bytes += value.byteLength;
          progress?.(bytes, total);
          controller.enqueue(value);
        } catch (exc) {
          const failed = download && !(exc instanceof MemsvcError);
          controller.error(failed ? this.#translate(exc, new AbortController().signal) : exc);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    });
  }
}

/** Turn an error response into the same class the Python SDK raises. */
export async function raiseForError(resp: Response): Promise<never> {
  const text = await resp.text().catch(() => "");
  let code = "";
  let message = text || resp.statusText || `HTTP ${resp.status}`;
  let details: Record<string, unknown> = {};
  try {
    const err = (JSON.parse(text) as { error?: unknown }).error as {
      code: unknown;
      message: unknown;
      details?: unknown;
    };
    if (typeof err.code === "string" && typeof err.message === "string") {
      code = err.code;
      message = err.message;
      if (err.details && typeof err.details === "object") {
        details = err.details as Record<string, unknown>;
      }
    }
  } catch {
    // not memsvc's JSON error shape (a proxy's page): the status decides the class
  }
  const cls = errorClass(code, resp.status);
  throw new cls(message, { details, status: resp.status, code: code || cls.code });
}

function envApiKey(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.MEMSVC_API_KEY || undefined;
}

/** A path segment: ids and cube names cannot be empty or contain '/'. */
function seg(value: string): string {
  if (typeof value !== "string" || !value || value.includes("/")) {
    throw new InvalidInput("ids and cube names cannot be empty or contain '/'");
  }
  // what the Python client leaves raw (RFC 3986 sub-delims, ':' and '@') stays raw here too
  return encodeURIComponent(value).replace(/%(3A|40|24|26|2B|2C|3B|3D)/g, decodeURIComponent);
}

function csv(values: string | readonly string[] | null | undefined): string | undefined {
  if (values == null) return undefined;
  return typeof values === "string" ? values : values.join(",");
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value == null) continue;
    if (Array.isArray(value)) {
      for (const v of value as readonly string[]) params.append(name, v);
    } else {
      params.append(name, String(value));
    }
  }
  const qs = params.toString();
  return qs ? `?${qs}` : "";
}

/** JSON as the server reads it: top-level nulls dropped (the server's defaults apply, as
 * the Python client's `_drop_none`), and a non-finite number refused here, as Python's
 * encoder does, instead of silently sent as null. */
function encodeJson(body: unknown): string {
  const top =
    body !== null && typeof body === "object" && !Array.isArray(body)
      ? Object.fromEntries(Object.entries(body).filter(([, v]) => v != null))
      : body;
  return JSON.stringify(top, (key, value: unknown) => {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new InvalidInput(`${key || "body"} must be a finite number`, {
        details: { field: key || "body" },
      });
    }
    return value;
  });
}

const ISO =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?))?(Z|[+-]\d{2}:?\d{2})?$/i;

/** A point in time as the API takes it; naive ISO strings mean UTC, as in Python. */
export function iso(value: When | null | undefined, field: string): string | undefined {
  if (value == null) return undefined;
  const bad = (why: string): never => {
    throw new InvalidInput(`${field} ${why}`, { details: { field } });
  };
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? bad("is an invalid Date") : value.toISOString();
  }
  if (typeof value === "number") {
    const when = new Date(value * 1000);
    return Number.isFinite(value) && !Number.isNaN(when.getTime())
      ? when.toISOString()
      : bad("is out of range");
  }
  if (typeof value === "string") {
    const m = ISO.exec(value.trim());
    if (m) {
      const zone = (m[3] ?? "Z").toUpperCase().replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
      const text = `${m[1]}T${m[2] ?? "00:00"}${zone}`;
      if (!Number.isNaN(Date.parse(text))) return text;
    }
    return bad(`is not an ISO 8601 datetime: ${JSON.stringify(value)}`);
  }
  return bad("must be a datetime");
}

function filtersBody(filters: FiltersInput | null | undefined): object | undefined {
  if (filters == null) return undefined;
  return { ...filters, since: iso(filters.since, "since"), until: iso(filters.until, "until") };
}

const LIST_FILTERS = new Set([
  "agent_id",
  "session_id",
  "kinds",
  "tags",
  "since",
  "until",
  "metadata",
  "tiers",
]);

/** A listing's filters as the query parameters GET /v1/memories takes. */
function listFilterParams(filters: ListOptions["filters"]): Record<string, QueryValue> {
  if (filters == null) return {};
  const given = filters as Record<string, unknown>;
  if (given.user_id != null) {
    throw new InvalidInput(
      "list filters by user_id are not supported over HTTP; pass user_id= instead",
      { details: { field: "filters" } },
    );
  }
  const unknown = Object.keys(given).filter((k) => !LIST_FILTERS.has(k) && k !== "user_id");
  if (unknown.length) {
    throw new InvalidInput(`bad filters: list does not filter by ${unknown.join(", ")}`, {
      details: { field: "filters" },
    });
  }
  const meta = filters.metadata;
  return {
    agent_id: filters.agent_id,
    session_id: filters.session_id,
    kinds: filters.kinds?.length ? filters.kinds : undefined,
    tags: filters.tags?.length ? filters.tags : undefined,
    since: iso(filters.since, "since"),
    until: iso(filters.until, "until"),
    metadata: meta && Object.keys(meta).length ? JSON.stringify(meta) : undefined,
    tiers: filters.tiers?.length ? filters.tiers : undefined,
  };
}

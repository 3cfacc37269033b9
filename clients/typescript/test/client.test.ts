/**
 * The TypeScript client against a real `memsvc serve` (one per run, started here): every
 * operation of the Python MemoryClient, its error classes, the generated types' freshness,
 * and the example. Only the transport-failure checks use a fetch double.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  AuthError,
  Conflict,
  CubeNotFound,
  DuplicateRecord,
  ERROR_CLASSES,
  IdempotencyKeyReused,
  InvalidInput,
  MemoryClient,
  MemsvcError,
  NotFound,
  ROUTE_HEADER,
  PermissionDenied,
  RecordNotFound,
  StorageError,
  errorClass,
  httpStatus,
  routeKey,
  type Hit,
  type MemoryRecord,
} from "memsvc";
import { SCHEMA_FILE, render } from "../tools/generate.js";
import { runInChromium } from "./browser.js";
import { PYTHON, freePort, serve, type Served } from "./server.js";

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL("../../../", import.meta.url)); // clients/typescript/build/
const DIST = fileURLToPath(new URL("../../../../dist/", import.meta.url));

let server: Served;
let mem: MemoryClient; // tenant acme
let other: MemoryClient; // tenant globex

before(async () => {
  const started = performance.now();
  server = await serve();
  // where the suite's time goes: most of it is the server's start (imports, the model)
  console.log(`memsvc serve ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  mem = new MemoryClient(server.url, { apiKey: server.keys.acme });
  other = new MemoryClient(server.url, { apiKey: server.keys.globex });
});
after(async () => server?.stop());

async function rejects<E extends MemsvcError>(
  promise: Promise<unknown> | (() => unknown),
  cls: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (exc) {
    assert.ok(exc instanceof cls, `expected ${cls.name}, got ${String(exc)}`);
    return exc;
  }
  assert.fail(`expected ${cls.name}, nothing was thrown`);
}

describe("generated types", () => {
  test("src/schema.ts is what openapi-typescript makes of the live /openapi.json", async () => {
    const live = await render(await (await fetch(`${server.url}/openapi.json`)).text());
    const checkedIn = readFileSync(SCHEMA_FILE, "utf8");
    if (live === checkedIn) return;
    const a = checkedIn.split("\n");
    const b = live.split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    assert.fail(
      `clients/typescript/src/schema.ts has drifted from the server's API ` +
        `(first difference at line ${line + 1}: ${JSON.stringify(a[line])} vs ` +
        `${JSON.stringify(b[line])}); regenerate it: cd clients/typescript && npm run generate`,
    );
  });

  test("the published code uses only what browsers have (no Node modules)", () => {
    for (const file of readdirSync(DIST).filter((f) => f.endsWith(".js"))) {
      const code = readFileSync(join(DIST, file), "utf8");
      const imports = [...code.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm)].map(
        (m) => m[1],
      );
      assert.deepEqual(
        imports.filter((m) => !m?.startsWith("./")),
        [],
        `${file} imports a module`,
      );
      assert.doesNotMatch(code, /\brequire\(|\bBuffer\b/, file);
    }
  });
});

describe("errors", () => {
  test("the classes, codes and statuses are Python's (memsvc/errors.py)", async () => {
    const script = `
import json
from memsvc import errors as e
print(json.dumps({
  "tree": {c.__name__: [c.code, c.__bases__[0].__name__, e.http_status(c)]
           for c in e._tree(e.MemsvcError)},
  "by_status": {s: e.error_class("", s).__name__ for s in (400, 401, 403, 404, 409, 413, 415,
                                                           422, 429, 500, 502, 503)},
}))`;
    const py = JSON.parse((await run(PYTHON, ["-c", script])).stdout) as {
      tree: Record<string, [string, string, number]>;
      by_status: Record<string, string>;
    };
    const ts = Object.fromEntries(
      ERROR_CLASSES.map((c) => [
        c.name,
        [
          c.code,
          Object.getPrototypeOf(c).name === "Error" ? "Exception" : Object.getPrototypeOf(c).name,
          httpStatus(c),
        ],
      ]),
    );
    assert.deepEqual(ts, py.tree);
    const byStatus = Object.fromEntries(
      Object.keys(py.by_status).map((s) => [s, errorClass("", Number(s)).name]),
    );
    assert.deepEqual(byStatus, py.by_status);
  });

  test("error responses come back as their classes, with code, status and details", async () => {
    const missing = await rejects(mem.get("no-such-id"), RecordNotFound);
    assert.ok(missing instanceof NotFound && missing instanceof MemsvcError);
    assert.equal(missing.code, "record_not_found");
    assert.equal(missing.status, 404);
    const empty = await rejects(mem.add("   ", { user_id: "ts-err" }), InvalidInput);
    assert.equal(empty.status, 422);
    assert.match(empty.message, /text is empty/);
    const badK = await rejects(mem.recall("x", { user_id: "ts-err", k: 0 }), InvalidInput);
    assert.equal(badK.details.field, "k");
    const stranger = new MemoryClient(server.url, { apiKey: "msk_000000000000_nope" });
    const denied = await rejects(stranger.listCubes(), AuthError);
    assert.equal(denied.status, 401);
    await rejects(new MemoryClient(server.url, { apiKey: "" }).listCubes(), AuthError);
  });

  test("bad arguments are refused before anything is sent", async () => {
    let sent = 0;
    const counting = new MemoryClient(server.url, {
      apiKey: server.keys.acme,
      fetch: (...args) => {
        sent += 1;
        return fetch(...args);
      },
    });
    const slash = await rejects(() => counting.get("a/b"), InvalidInput);
    assert.equal(slash.status, undefined);
    await rejects(() => counting.delete(""), InvalidInput);
    const nan = await rejects(
      () => counting.add("x", { user_id: "u", importance: NaN }),
      InvalidInput,
    );
    assert.equal(nan.details.field, "importance");
    const when = await rejects(
      () => counting.recall("x", { user_id: "u", at: "next tuesday" }),
      InvalidInput,
    );
    assert.equal(when.details.field, "at");
    await rejects(() => counting.recall("x", { user_id: "u", at: new Date("nope") }), InvalidInput);
    await rejects(() => counting.list({ filters: { user_id: "u" } as never }), InvalidInput);
    await rejects(() => counting.consolidate(null), InvalidInput);
    for (const key of ["", "has space", "x".repeat(256), "caf\u00e9"]) {
      const bad = await rejects(
        () => counting.add("x", { user_id: "u", idempotency_key: key }),
        InvalidInput,
      );
      assert.equal(bad.details.field, "idempotency_key");
    }
    assert.equal(sent, 0);
  });

  test("an unreachable server, a timeout and a caller's abort", async () => {
    const port = await freePort(); // nothing listens there
    const gone = await rejects(
      new MemoryClient(`http://127.0.0.1:${port}`).listCubes(),
      StorageError,
    );
    assert.match(gone.message, /cannot reach memsvc at http:\/\/127\.0\.0\.1/);

    // A server that accepts connections and never answers.
    const sockets: Socket[] = [];
    const mute = createServer((s) => sockets.push(s)).listen(0, "127.0.0.1");
    await new Promise((r) => mute.once("listening", r));
    const url = `http://127.0.0.1:${(mute.address() as { port: number }).port}`;
    try {
      const slow = new MemoryClient(url, { apiKey: "k", timeoutMs: 150 });
      const timedOut = await rejects(slow.get("x"), StorageError);
      assert.match(timedOut.message, /no answer within 0\.15 s/);
      const aborter = new AbortController();
      const pending = slow.recall("x", { user_id: "u", signal: aborter.signal });
      aborter.abort();
      await assert.rejects(pending, { name: "AbortError" });
    } finally {
      for (const s of sockets) s.destroy();
      mute.close();
    }
  });

  test("a response that is not memsvc's error shape is read by its status", async () => {
    const reply = (status: number, body: string) =>
      new MemoryClient("http://memsvc.invalid", {
        fetch: async () => new Response(body, { status, headers: { "content-type": "text/html" } }),
      });
    const unavailable = await rejects(reply(503, "<h1>Bad gateway</h1>").listCubes(), StorageError);
    assert.equal(unavailable.message, "<h1>Bad gateway</h1>");
    const odd = await rejects(reply(502, "").listCubes(), MemsvcError);
    assert.equal(odd.constructor, MemsvcError);
    assert.equal(odd.status, 502);
  });
});

describe("records", () => {
  test("add text, recall with explain, get", async () => {
    const recs = await mem.add(
      ["The boiler is serviced every October.", "Grandma's birthday is June 2nd."],
      { user_id: "ts-user", tags: ["home"], metadata: { room: "cellar", note: null } },
    );
    assert.equal(recs.length, 2);
    assert.equal(recs[0]!.cube, "user:ts-user");
    assert.deepEqual(recs[0]!.metadata, { room: "cellar", note: null });
    const hits = await mem.recall("when is the heating checked", { user_id: "ts-user", k: 1 });
    assert.equal(hits.length, 1);
    assert.equal(hits[0]!.record.id, recs[0]!.id);
    assert.equal(hits[0]!.explain?.dense?.rank, 1);
    assert.ok(hits[0]!.score > 0);
    const got = await mem.get(recs[1]!.id);
    assert.deepEqual(got.tags, ["home"]);
    assert.equal(got.content, "Grandma's birthday is June 2nd.");
  });

  test("add chat messages: one record per message, with session and speaker", async () => {
    const recs = await mem.add({
      messages: [
        { role: "user", content: "I adopted a cat named Miso.", name: "Ann" },
        { role: "assistant", content: "Congratulations on adopting Miso!" },
      ],
      user_id: "ts-chat",
      session_id: "s1",
      timestamp: new Date("2025-05-01T12:00:00Z"),
    });
    assert.equal(recs.length, 2);
    assert.ok(recs.every((r) => r.session_id === "s1"));
    assert.equal(recs[0]!.event_time?.slice(0, 19), "2025-05-01T12:00:00");
    const [hit] = await mem.recall("what pet does Ann have", { user_id: "ts-chat", k: 1 });
    assert.match(hit!.record.content, /Miso/);
  });

  test("recall with filters, at and a recipe", async () => {
    const user = "ts-filters";
    const [old] = await mem.add("The team offsite was in Lisbon.", {
      user_id: user,
      timestamp: "2024-03-01T10:00:00Z",
      tags: ["travel"],
    });
    const [recent] = await mem.add("The team offsite was in Porto.", {
      user_id: user,
      timestamp: 1735732800, // 2025-01-01T12:00:00Z as Unix seconds
    });
    const ids = (hits: Hit[]) => hits.map((h) => h.record.id).sort();
    const q = "where was the team offsite";
    assert.deepEqual(ids(await mem.recall(q, { user_id: user })), [old!.id, recent!.id].sort());
    assert.deepEqual(ids(await mem.recall(q, { user_id: user, filters: { tags: ["travel"] } })), [
      old!.id,
    ]);
    const march = { since: new Date("2024-02-01T00:00:00Z"), until: "2024-04-01" };
    assert.deepEqual(ids(await mem.recall(q, { user_id: user, filters: march })), [old!.id]);
    // `at`: in mid-2024 only the Lisbon offsite had happened (a record is valid from its
    // event time), as a Date, an ISO string or Unix seconds.
    for (const at of [new Date("2024-06-01T00:00:00Z"), "2024-06-01T00:00:00", 1717200000]) {
      assert.deepEqual(ids(await mem.recall(q, { user_id: user, at })), [old!.id]);
    }
    const keywordOnly = await mem.recall("Porto", { user_id: user, recipe: "keyword=1|rrf20" });
    assert.equal(keywordOnly[0]!.record.id, recent!.id);
    assert.ok(keywordOnly.every((h) => h.explain?.dense === undefined && h.explain?.keyword));
    const preset = await mem.recall(q, { user_id: user, recipe: { channels: { dense: 1 }, k: 1 } });
    assert.ok(preset.length >= 1 && preset[0]!.explain?.dense);
  });

  test("update keeps history; lineage; soft delete, restore, hard delete", async () => {
    const [rec] = await mem.add("Ann lives in Oslo.", { user_id: "ts-life" });
    const updated = await mem.update(rec!.id, {
      text: "Ann lives in Bergen.",
      tags: ["moved"],
      valid_from: new Date("2025-01-01T00:00:00Z"),
      importance: 0.9,
    });
    assert.equal(updated.version, 2);
    assert.equal(updated.content, "Ann lives in Bergen.");
    assert.equal(updated.valid_from?.slice(0, 10), "2025-01-01");
    const history = await mem.history(rec!.id);
    assert.deepEqual(
      history.map((v) => [v.version, v.change, v.content]),
      [
        [1, "create", "Ann lives in Oslo."],
        [2, "update", "Ann lives in Bergen."],
      ],
    );
    assert.deepEqual(
      (await mem.lineage(rec!.id)).map((r) => r.id),
      [rec!.id],
    );
    await mem.delete(rec!.id);
    assert.equal((await mem.get(rec!.id)).status, "deleted");
    assert.equal((await mem.restore(rec!.id)).status, "active");
    await mem.delete(rec!.id, { hard: true });
    await rejects(mem.get(rec!.id), RecordNotFound);
    await rejects(mem.history(rec!.id), RecordNotFound);
  });

  test("list pages with cursors; listAll follows them; filters and status", async () => {
    const user = "ts-pages";
    const added: MemoryRecord[] = [];
    for (let i = 0; i < 5; i++) {
      const tags = i % 2 ? ["odd"] : [];
      added.push(
        ...(await mem.add(`Page fact number ${i}.`, { user_id: user, tags, metadata: { i } })),
      );
    }
    const seen: string[] = [];
    let cursor: string | null | undefined = null;
    let pages = 0;
    do {
      const page = await mem.list({ user_id: user, limit: 2, cursor });
      assert.ok(page.items.length <= 2);
      seen.push(...page.items.map((r) => r.id));
      cursor = page.next_cursor;
      pages += 1;
    } while (cursor);
    assert.deepEqual(
      seen,
      added.map((r) => r.id),
    );
    assert.equal(pages, 3);
    const all: string[] = [];
    for await (const rec of mem.listAll({ user_id: user, limit: 2 })) all.push(rec.id);
    assert.deepEqual(all, seen);
    const odd = await mem.list({ user_id: user, filters: { tags: ["odd"] } });
    assert.deepEqual(
      odd.items.map((r) => r.content),
      ["Page fact number 1.", "Page fact number 3."],
    );
    const meta = await mem.list({ user_id: user, filters: { metadata: { i: 4 } } });
    assert.deepEqual(
      meta.items.map((r) => r.id),
      [added[4]!.id],
    );
    await mem.delete(added[0]!.id);
    const deleted = await mem.list({ user_id: user, status: "deleted" });
    assert.deepEqual(
      deleted.items.map((r) => r.id),
      [added[0]!.id],
    );
    assert.equal((await mem.list({ user_id: user })).items.length, 4);
  });

  test("an idempotency key makes a replayed add write nothing", async () => {
    const user = "ts-idem";
    const key = `ts-${Date.now()}`;
    const first = await mem.add("Paid the electricity bill.", {
      user_id: user,
      idempotency_key: key,
    });
    assert.equal(first.replayed, false);
    // The same request again, "pinned: false" now sent explicitly: the same request.
    const again = await mem.add("Paid the electricity bill.", {
      user_id: user,
      pinned: false,
      idempotency_key: key,
    });
    assert.equal(again.replayed, true);
    assert.deepEqual(
      again.map((r) => r.id),
      first.map((r) => r.id),
    );
    assert.equal((await mem.list({ user_id: user })).items.length, 1);
    const reused = await rejects(
      mem.add("Paid the water bill.", { user_id: user, idempotency_key: key }),
      IdempotencyKeyReused,
    );
    assert.ok(reused instanceof Conflict && reused.status === 409);
    // Another tenant's identical key is another key.
    const theirs = await other.add("Paid the electricity bill.", {
      user_id: user,
      idempotency_key: key,
    });
    assert.equal(theirs.replayed, false);
    assert.notEqual(theirs[0]!.id, first[0]!.id);
  });

  test("a cube that refuses exact duplicates answers DuplicateRecord with the record", async () => {
    await mem.createCube("ts-strict", { refuse_duplicates: true });
    const [rec] = await mem.add("The gate code is 4512.", { user_id: "ts-dup", cube: "ts-strict" });
    const dup = await rejects(
      mem.add("The gate code is 4512.", { user_id: "ts-dup", cube: "ts-strict" }),
      DuplicateRecord,
    );
    assert.ok(dup instanceof Conflict && dup.status === 409);
    assert.equal(dup.details.id, rec!.id);
  });
});

describe("cubes", () => {
  test("create, get, list, delete; a duplicate is a Conflict, a deleted cube not found", async () => {
    const cube = await mem.createCube("ts-notes", { description: "scratch", metadata: { a: 1 } });
    assert.equal(cube.name, "ts-notes");
    assert.equal(cube.access, "owner");
    assert.equal((await mem.getCube("ts-notes")).id, cube.id);
    assert.equal((await mem.getCube(cube.id)).name, "ts-notes");
    assert.ok((await mem.listCubes()).some((c) => c.id === cube.id));
    const dup = await rejects(mem.createCube("ts-notes"), Conflict);
    assert.equal(dup.status, 409);
    await mem.deleteCube("ts-notes");
    await rejects(mem.getCube("ts-notes"), CubeNotFound);
  });

  test("share read-only with another tenant, then unshare", async () => {
    const cube = await mem.createCube("ts-shared");
    await mem.add(["Alice works with Bob in Paris.", "Bob and Alice met at Paris airport."], {
      user_id: "ts-owner",
      cube: "ts-shared",
    });
    const shared = await mem.shareCube("ts-shared", "globex");
    assert.deepEqual(shared.shared_with, ["globex"]);
    const seen = (await other.listCubes()).find((c) => c.id === cube.id);
    assert.equal(seen?.access, "read");
    const [hit] = await other.recall("where does Alice work", {
      user_id: "reader",
      cube: cube.id,
      k: 1,
    });
    assert.match(hit!.record.content, /Paris/);
    const denied = await rejects(
      other.add("globex was here", { user_id: "reader", cube: cube.id }),
      PermissionDenied,
    );
    assert.equal(denied.status, 403);
    assert.deepEqual((await mem.unshareCube("ts-shared", "globex")).shared_with, []);
    await rejects(other.getCube(cube.id), CubeNotFound);
  });

  test("export streams straight into another tenant's import; a Blob imports too", async () => {
    const progress: number[] = [];
    const exported = await mem.exportCube("ts-shared", { progress: (n) => progress.push(n) });
    assert.equal(exported.counts.records, 2);
    assert.ok(exported.counts.entities >= 2);
    const uploaded: number[] = [];
    const imported = await other.importCube(exported.body, {
      cube: "ts-imported",
      progress: (n) => uploaded.push(n),
    });
    assert.equal(imported.name, "ts-imported");
    assert.equal(imported.records, 2);
    assert.ok(progress.length > 0 && uploaded.at(-1) === progress.at(-1));
    if (exported.size !== null) assert.equal(progress.at(-1), exported.size);
    const [hit] = await other.recall("Alice and Bob", { user_id: "x", cube: "ts-imported", k: 1 });
    assert.match(hit!.record.content, /Alice/);

    const again = await mem.exportCube("ts-shared");
    const blob = await new Response(again.body).blob();
    const head = new Uint8Array(await blob.slice(0, 2).arrayBuffer());
    assert.deepEqual([...head], [0x1f, 0x8b]); // gzip
    // The caller's own record ids are a Conflict; another tenant's copy gets new ids.
    await rejects(mem.importCube(blob, { cube: "ts-copy" }), Conflict);
    const copy = await other.importCube(blob, { cube: "ts-copy" });
    assert.equal(copy.records, 2);
    await rejects(mem.importCube(new Uint8Array([1, 2, 3]), { cube: "ts-junk" }), InvalidInput);
    await rejects(mem.exportCube("ts-no-such-cube"), CubeNotFound);
  });

  test("maintain and its runs; the graph and a record's neighbours", async () => {
    const [run] = await mem.maintain("ts-shared");
    assert.equal(run!.trigger, "manual");
    assert.ok(run!.finished_at);
    const runs = await mem.maintenanceRuns("ts-shared");
    assert.equal(runs.length, 1);
    const everywhere = await mem.maintain();
    const owned = (await mem.listCubes()).filter((c) => c.access === "owner");
    assert.equal(everywhere.length, owned.length);

    const graph = await mem.graph("ts-shared");
    const types = new Set(graph.edges.map((e) => e.type));
    assert.ok(types.has("mentions"), [...types].join());
    const mentions = await mem.graph("ts-shared", { types: ["mentions"], limit: 2 });
    assert.ok(mentions.edges.length === 2 && mentions.edges.every((e) => e.type === "mentions"));
    assert.ok(mentions.next_cursor);
    const rest = await mem.graph("ts-shared", { types: "mentions", cursor: mentions.next_cursor });
    assert.equal(
      mentions.edges.length + rest.edges.length,
      graph.edges.filter((e) => e.type === "mentions").length,
    );
    const record = graph.nodes.find((n) => n.kind === "record")!;
    const near = await mem.neighbors(record.id.replace(/^record:/, ""), { types: ["mentions"] });
    assert.ok(near.length > 0);
    assert.ok(near.every((n) => n.edge === "mentions" && n.hops === 1 && n.node.kind === "entity"));
  });
});

describe("routing", () => {
  test("calls on one cube carry its routing token for a load balancer; calls by id none", async () => {
    const sent: [string, string | null][] = [];
    const routed = new MemoryClient(server.url, {
      apiKey: server.keys.acme,
      fetch: (input, init) => {
        const path = new URL(String(input)).pathname;
        sent.push([path, new Headers(init?.headers).get(ROUTE_HEADER)]);
        return fetch(input, init);
      },
    });
    const token = (cube: string): string =>
      createHash("sha256").update(cube, "utf8").digest("hex").slice(0, 16);
    assert.equal(routeKey("user:alice"), "dabd1db8d35ab131"); // as the Python client's
    assert.equal(routeKey("caf\u00e9 \u{1f600}"), token("caf\u00e9 \u{1f600}"));
    const [rec] = await routed.add("Ida keeps bees.", { user_id: "ts-route" });
    await routed.recall("bees", { user_id: "ts-route", k: 1 });
    await routed.list({ user_id: "ts-route" });
    await routed.getCube("user:ts-route");
    await routed.createCube("ts-route-cube");
    await routed.add("Ida's hives face south.", { user_id: "ts-route", cube: "ts-route-cube" });
    await routed.graph("ts-route-cube");
    await new Response((await routed.exportCube("ts-route-cube")).body).arrayBuffer();
    await routed.deleteCube("ts-route-cube");
    await routed.get(rec!.id);
    await routed.listCubes();
    const user = token("user:ts-route");
    const cube = token("ts-route-cube");
    assert.deepEqual(sent, [
      ["/v1/memories", user],
      ["/v1/memories/search", user],
      ["/v1/memories", user],
      ["/v1/cubes/user:ts-route", user],
      ["/v1/cubes", cube],
      ["/v1/memories", cube],
      ["/v1/cubes/ts-route-cube/graph", cube],
      ["/v1/cubes/ts-route-cube/export", cube],
      ["/v1/cubes/ts-route-cube", cube],
      [`/v1/memories/${rec!.id}`, null],
      ["/v1/cubes", null],
    ]);
  });
});

describe("tiers", () => {
  test("generate goes through recall to the server's checks (no LM is loaded)", async () => {
    const [rec] = await mem.add("The wifi password is on the fridge.", { user_id: "ts-gen" });
    // A plaintext record is no adapter: refused after recall, before the LM is touched.
    const notAdapter = await rejects(
      mem.generate("where is the wifi password", {
        user_id: "ts-gen",
        adapter: rec!.id,
        filters: { tags: [] },
        recipe: "fast",
        max_tokens: 8,
      }),
      InvalidInput,
    );
    assert.equal(notAdapter.details.field, "adapter");
    const tooMany = await rejects(
      mem.generate("x", { user_id: "ts-gen", max_tokens: 100_000 }),
      InvalidInput,
    );
    assert.equal(tooMany.details.field, "max_tokens");
    await rejects(mem.demote("no-such-id"), RecordNotFound);
    await rejects(mem.promote(["no-such-id"]), RecordNotFound);
  });

  test(
    "generate answers with the local LM",
    {
      skip:
        !process.env.MEMSVC_TEST_LM &&
        "set MEMSVC_TEST_LM=1 to load the server's local LM (about 40 s on a busy 2-core machine)",
    },
    async () => {
      await mem.add("Alice moved to Berlin in 2021.", { user_id: "ts-lm" });
      const out = await mem.generate("Where does Alice live?", {
        user_id: "ts-lm",
        k: 1,
        max_tokens: 8,
      });
      assert.ok(out.text.length > 0);
      assert.match(out.memories?.[0]?.record.content ?? "", /Berlin/);
      assert.ok((out.prompt_tokens ?? 0) > 0);
    },
  );
});

describe("example", () => {
  test("examples/typescript/quickstart.ts runs against the server", async () => {
    const { stdout } = await run(
      process.execPath,
      [join(BUILD, "examples/typescript/quickstart.js")],
      {
        env: { ...process.env, MEMSVC_URL: server.url, MEMSVC_API_KEY: server.keys.acme },
      },
    );
    const lines = stdout.trim().split("\n");
    assert.match(lines[0]!, /peanuts/);
    assert.ok(lines.includes("4 records for maya"), stdout);
    assert.equal(lines.at(-1), "not found: record_not_found");
  });
});

describe("browser", () => {
  test("the built client runs in headless Chromium against the server", async () => {
    const out = await runInChromium(server.url, server.keys);
    const added = out.added as string[];
    assert.equal(added.length, 2);
    assert.equal(out.replayed, true);
    assert.deepEqual(out.replayedIds, added);
    assert.equal(out.top, "Alice moved to Berlin.");
    assert.ok((out.explained as string[]).includes("dense"));
    assert.deepEqual(out.listed, added);
    assert.deepEqual(out.gzip, [0x1f, 0x8b]);
    assert.equal(out.exportedRecords, 2);
    assert.equal(out.imported, 2);
    assert.deepEqual(out.errors, ["RecordNotFound", "Conflict"]);
  });
});

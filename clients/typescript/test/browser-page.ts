/**
 * What the browser test runs in headless Chromium: the built client (dist/, mapped to
 * "memsvc" by the page's import map) against memsvc on the page's own origin. The keys come
 * in the URL's fragment; the results go into <pre id="out"> as JSON.
 */
import { Conflict, MemoryClient, RecordNotFound } from "memsvc";

const out = document.getElementById("out")!;
const keys = new URLSearchParams(location.hash.slice(1));
const mem = new MemoryClient(location.origin, { apiKey: keys.get("acme") });
const other = new MemoryClient(location.origin, { apiKey: keys.get("globex") });

async function run(): Promise<Record<string, unknown>> {
  const key = crypto.randomUUID();
  const texts = ["Alice moved to Berlin.", "Bob drinks green tea."];
  const added = await mem.add(texts, { user_id: "browser", idempotency_key: key });
  const replay = await mem.add(texts, { user_id: "browser", idempotency_key: key });
  const hits = await mem.recall("where does alice live", { user_id: "browser", k: 1 });
  const listed: string[] = [];
  for await (const rec of mem.listAll({ user_id: "browser", limit: 1 })) listed.push(rec.id);
  const exported = await mem.exportCube("user:browser");
  const file = await new Response(exported.body).blob();
  const imported = await other.importCube(file, { cube: "from-browser" });
  const errors: string[] = [];
  for (const call of [() => mem.get("no-such-id"), () => mem.importCube(file)]) {
    try {
      await call();
    } catch (exc) {
      const known = exc instanceof RecordNotFound || exc instanceof Conflict;
      errors.push(known ? exc.constructor.name : String(exc));
    }
  }
  return {
    added: added.map((r) => r.id),
    replayed: replay.replayed,
    replayedIds: replay.map((r) => r.id),
    top: hits[0]?.record.content,
    explained: Object.keys(hits[0]?.explain ?? {}),
    listed,
    gzip: [...new Uint8Array(await file.slice(0, 2).arrayBuffer())],
    exportedRecords: exported.counts.records,
    imported: imported.records,
    errors,
  };
}

run().then(
  (result) => (out.textContent = JSON.stringify(result)),
  (exc: unknown) => (out.textContent = `ERROR ${String(exc)}`),
);

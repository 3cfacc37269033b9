/**
 * A real browser for the client: headless Chromium (Debian package `chromium`) loads a page
 * from a small same-origin front (memsvc grants no CORS, so pages reach it through their own
 * origin, as behind a reverse proxy): the page, the built client, and /v1 passed to memsvc.
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const PACKAGE = fileURLToPath(new URL("../../../../", import.meta.url));
const PAGE_SCRIPT = fileURLToPath(new URL("./browser-page.js", import.meta.url));

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">{"imports": {"memsvc": "/dist/index.js"}}</script>
<pre id="out">pending</pre>
<script type="module" src="/page.js"></script>`;

async function handle(api: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = req.url ?? "/";
  const file = (type: string, body: string | Buffer): void => {
    res.writeHead(200, { "content-type": type });
    res.end(body);
  };
  if (path === "/" || path === "/index.html") return file("text/html", PAGE);
  if (path === "/page.js") return file("text/javascript", readFileSync(PAGE_SCRIPT));
  if (/^\/dist\/[a-z]+\.js$/.test(path)) {
    return file("text/javascript", readFileSync(join(PACKAGE, path)));
  }
  const body: Buffer[] = [];
  for await (const chunk of req) body.push(chunk as Buffer);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string" && !["host", "connection"].includes(name)) {
      headers.set(name, value);
    }
  }
  const resp = await fetch(api + path, {
    method: req.method,
    headers,
    body: body.length ? Buffer.concat(body) : undefined,
  });
  const out: Record<string, string> = {};
  resp.headers.forEach((value, name) => {
    if (!["content-encoding", "content-length", "transfer-encoding"].includes(name)) {
      out[name] = value;
    }
  });
  res.writeHead(resp.status, out);
  res.end(Buffer.from(await resp.arrayBuffer()));
}

/** Run browser-page.ts in headless Chromium against the memsvc at `api`; its JSON result. */
export async function runInChromium(
  api: string,
  keys: Record<string, string>,
): Promise<Record<string, unknown>> {
  const front = createServer((req, res) => {
    handle(api, req, res).catch((exc: unknown) => {
      res.writeHead(502);
      res.end(String(exc));
    });
  }).listen(0, "127.0.0.1");
  await once(front, "listening");
  const { port } = front.address() as { port: number };
  try {
    const url = `http://127.0.0.1:${port}/#${new URLSearchParams(keys).toString()}`;
    // --virtual-time-budget: the DOM is dumped once the page's work (its fetches) is done.
    const { stdout } = await promisify(execFile)(
      process.env.MEMSVC_CHROMIUM ?? "chromium",
      [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=60000",
        "--dump-dom",
        url,
      ],
      { timeout: 90_000 },
    );
    const text = /<pre id="out">([\s\S]*?)<\/pre>/.exec(stdout)?.[1] ?? stdout;
    const decoded = text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
    if (!decoded.startsWith("{")) throw new Error(`the page says: ${decoded}`);
    return JSON.parse(decoded) as Record<string, unknown>;
  } finally {
    front.close();
  }
}

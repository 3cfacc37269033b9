/**
 * A real `memsvc serve` for the tests, the benchmark and the schema generator: a fresh data
 * directory, a free loopback port, and one API key per tenant (acme, globex), as the Python
 * end-to-end tests start theirs (tests/conftest.py).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from clients/typescript/build/clients/typescript/test/). */
export const ROOT = fileURLToPath(new URL("../../../../../../", import.meta.url));
/** The Python that runs memsvc: MEMSVC_PYTHON, else the repository's .venv. */
export const PYTHON = process.env.MEMSVC_PYTHON ?? join(ROOT, ".venv", "bin", "python");

export interface Served {
  url: string;
  home: string;
  keys: { acme: string; globex: string };
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(PYTHON, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${args.join(" ")} failed (${code}):\n${err}`);
  return out;
}

/** Start a server; resolves once /readyz answers 200. `env` adds MEMSVC_* settings. */
export async function serve(env: Record<string, string> = {}): Promise<Served> {
  const home = mkdtempSync(join(tmpdir(), "memsvc-ts-"));
  const environ = { ...process.env, MEMSVC_HOME: home, ...env };
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // The log goes to a file: an unread pipe would fill and block the server.
  const log = join(home, "server.log");
  const proc: ChildProcess = spawn(PYTHON, ["-m", "memsvc.cli", "serve", "--port", String(port)], {
    env: environ,
    stdio: ["ignore", openSync(log, "w"), openSync(log, "a")],
  });
  const exited = once(proc, "exit");
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      await exited;
    }
    rmSync(home, { recursive: true, force: true });
  };
  try {
    // The keys are made while the server starts (both migrate the fresh database safely,
    // as several workers on one data directory do): one Python process for both tenants.
    const made = run(
      [
        "-c",
        "import json; from memsvc import Memory\n" +
          "with Memory() as m: print(json.dumps({t: m.keys.create(t)[1] for t in ('acme', 'globex')}))",
      ],
      environ,
    );
    const keys = JSON.parse(await made) as Served["keys"];
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        if ((await fetch(`${url}/readyz`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`memsvc serve did not become ready:\n${readFileSync(log, "utf8")}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return { url, home, keys, stop };
  } catch (exc) {
    await stop();
    throw exc;
  }
}

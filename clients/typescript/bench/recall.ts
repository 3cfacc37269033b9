/**
 * Recall round trips through the TypeScript client vs the Python client, on one server.
 *
 *     npm run bench -- [--records 2000] [--seconds 10] [--rounds 2] [--callers 1,8]
 *
 * Starts a real `memsvc serve` (test/server.ts), adds `--records` texts (memsvc's eval corpus)
 * to one user's cube, then for each round and each caller count runs `recall` (k=10) in a
 * closed loop for `--seconds` with: the TypeScript client (callers as concurrent async calls
 * on one MemoryClient), the Python MemoryClient (one per caller thread) and the Python
 * AsyncMemoryClient (asyncio tasks on one client), in turn (bench/recall_py.py), so that
 * load from elsewhere on the machine falls on all three alike. Queries are distinct
 * sentences, the same list for every client. Prints requests/s and p50/p95 per client (the
 * median over rounds), and the client process's CPU time per request (what the client
 * itself costs, whatever the server's load), and writes them as JSON with --json FILE.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { parseArgs } from "node:util";
import { MemoryClient } from "memsvc";
import { PYTHON, serve } from "../test/server.js";

const HELPER = fileURLToPath(new URL("../../../../bench/recall_py.py", import.meta.url));
const USER = "bench";

interface Result {
  client: string;
  callers: number;
  requests: number;
  seconds: number;
  rps: number;
  p50_ms: number;
  p95_ms: number;
  /** The client process's CPU time per request (user + system). */
  cpu_ms: number;
}

const { values: args } = parseArgs({
  options: {
    records: { type: "string", default: "2000" },
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
    callers: { type: "string", default: "1,8" },
    json: { type: "string" },
  },
});

async function python(...argv: string[]): Promise<unknown> {
  const { stdout } = await promisify(execFile)(PYTHON, [HELPER, ...argv], {
    maxBuffer: 1 << 28,
  });
  return JSON.parse(stdout);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

async function loadTs(
  mem: MemoryClient,
  callers: number,
  seconds: number,
  queries: string[],
): Promise<Result> {
  await Promise.all(
    Array.from({ length: callers }, () => mem.recall("warm up", { user_id: USER })),
  );
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  const cpu = process.cpuUsage();
  const stop = start + seconds * 1000;
  const caller = async (): Promise<void> => {
    while (performance.now() < stop) {
      const q = queries[next++ % queries.length]!;
      const t = performance.now();
      await mem.recall(q, { user_id: USER, k: 10 });
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  const elapsed = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  latencies.sort((a, b) => a - b);
  return {
    client: "typescript",
    callers,
    requests: latencies.length,
    seconds: elapsed,
    rps: latencies.length / elapsed,
    p50_ms: quantile(latencies, 0.5),
    p95_ms: quantile(latencies, 0.95),
    cpu_ms: (used.user + used.system) / 1000 / Math.max(1, latencies.length),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const records = Number(args.records);
  const seconds = Number(args.seconds);
  const rounds = Number(args.rounds);
  const callerCounts = args.callers!.split(",").map(Number);
  const corpus = (await python("corpus", String(records), "5000")) as {
    texts: string[];
    queries: string[];
  };
  const dir = mkdtempSync(join(tmpdir(), "memsvc-bench-"));
  const queryFile = join(dir, "queries.json");
  writeFileSync(queryFile, JSON.stringify(corpus.queries));
  const server = await serve();
  try {
    const mem = new MemoryClient(server.url, { apiKey: server.keys.acme });
    for (let i = 0; i < corpus.texts.length; i += 100) {
      await mem.add(corpus.texts.slice(i, i + 100), { user_id: USER });
    }
    console.error(
      `server ${server.url}: ${records} records; load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
    );
    const results: Result[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const callers of callerCounts) {
        const runs: Result[] = [await loadTs(mem, callers, seconds, corpus.queries)];
        for (const mode of ["sync", "async"]) {
          const py = (await python(
            "load",
            server.url,
            server.keys.acme,
            String(callers),
            String(seconds),
            queryFile,
            mode,
          )) as Omit<Result, "client">;
          runs.push({ client: `python-${mode}`, ...py });
        }
        for (const r of runs) {
          console.error(
            `round ${round}  ${r.client.padEnd(12)} callers ${callers}: ${r.rps.toFixed(1)} req/s, p50 ${r.p50_ms.toFixed(1)} ms, client CPU ${r.cpu_ms.toFixed(2)} ms/request`,
          );
        }
        results.push(...runs);
      }
    }
    console.log("| client | callers | requests/s | p50 ms | p95 ms | client CPU ms/request |");
    console.log("|---|---|---|---|---|---|");
    for (const callers of callerCounts) {
      for (const client of ["typescript", "python-sync", "python-async"]) {
        const rs = results.filter((r) => r.client === client && r.callers === callers);
        const row = [
          median(rs.map((r) => r.rps)).toFixed(1),
          median(rs.map((r) => r.p50_ms)).toFixed(1),
          median(rs.map((r) => r.p95_ms)).toFixed(1),
          median(rs.map((r) => r.cpu_ms)).toFixed(2),
        ];
        console.log(`| ${client} | ${callers} | ${row.join(" | ")} |`);
      }
    }
    console.error(
      `load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
    );
    if (args.json)
      writeFileSync(args.json, JSON.stringify({ records, seconds, rounds, results }, null, 2));
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * Regenerate src/schema.ts from a live server's /openapi.json: `npm run generate` starts a
 * real `memsvc serve` (test/server.ts) and runs openapi-typescript's CLI on its schema;
 * `render` is what the drift test compares the checked-in file with.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { serve } from "../test/server.js";

const PACKAGE = fileURLToPath(new URL("../../../../", import.meta.url));
export const SCHEMA_FILE = join(PACKAGE, "src", "schema.ts");
const CLI = join(PACKAGE, "node_modules", "openapi-typescript", "bin", "cli.js");

/** openapi-typescript's options: a field with a default stays optional, so request types
 * need only what the server requires (the responses' defaulted fields are optional too). */
export const OPTIONS = ["--default-non-nullable", "false"];

/** What `openapi-typescript schema.json -o schema.ts ${OPTIONS}` writes for this schema. */
export async function render(schema: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "memsvc-schema-"));
  try {
    writeFileSync(join(dir, "openapi.json"), schema);
    const out = join(dir, "schema.ts");
    await promisify(execFile)(process.execPath, [
      CLI,
      join(dir, "openapi.json"),
      "-o",
      out,
      ...OPTIONS,
    ]);
    return readFileSync(out, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const server = await serve();
  try {
    const schema = await (await fetch(`${server.url}/openapi.json`)).text();
    writeFileSync(SCHEMA_FILE, await render(schema));
    console.log(`wrote ${SCHEMA_FILE}`);
  } finally {
    await server.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();

/**
 * memsvc from TypeScript: store what happened, recall what is relevant, page through records.
 *
 *     MEMSVC_URL=http://127.0.0.1:8000 MEMSVC_API_KEY=msk_... node quickstart.js
 *
 * (compiled by clients/typescript's tests, which run it against a real server).
 */
import { MemoryClient, NotFound } from "memsvc";

const mem = new MemoryClient(
  process.env.MEMSVC_URL ?? "http://127.0.0.1:8000",
  {
    apiKey: process.env.MEMSVC_API_KEY,
  },
);

// A chat turn becomes one record per message; plain text one record per string.
await mem.add({
  messages: [
    { role: "user", content: "I moved to Lisbon last spring.", name: "Maya" },
    { role: "assistant", content: "Nice! How do you like Lisbon so far?" },
  ],
  user_id: "maya",
  session_id: "onboarding",
});
await mem.add(["Maya is allergic to peanuts.", "Maya plays the cello."], {
  user_id: "maya",
  tags: ["profile"],
});

// Recall: the best hits first, each with how every retrieval channel ranked it.
const hits = await mem.recall("what should I avoid cooking for Maya?", {
  user_id: "maya",
  k: 3,
});
for (const hit of hits) {
  const channels = Object.keys(hit.explain ?? {}).join(", ");
  console.log(`${hit.score.toFixed(3)}  ${hit.record.content}  [${channels}]`);
}

// Page through everything stored for the user, oldest first (the cursors are followed).
let count = 0;
for await (const record of mem.listAll({ user_id: "maya", limit: 2 }))
  count += record ? 1 : 0;
console.log(`${count} records for maya`);

// Errors are typed, with the same classes as the Python SDK.
try {
  await mem.get("no-such-record");
} catch (exc) {
  if (!(exc instanceof NotFound)) throw exc;
  console.log(`not found: ${exc.code}`);
}

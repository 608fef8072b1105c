// What every file of the suite shares: a client for the server under test,
// gates that hold a run inside a node, and waiting on conditions.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

import { Client } from "@langchain/langgraph-sdk";

export const SERVER_URL = process.env.LANGGRAPH_URL;
if (!SERVER_URL) {
  throw new Error("LANGGRAPH_URL must name the server under test, e.g. http://127.0.0.1:2024");
}

// No retries: a 5xx retried behind the test's back would hide a server bug.
export function client(options = {}) {
  return new Client({ apiUrl: SERVER_URL, callerOptions: { maxRetries: 0, ...options } });
}

// The reply of the `chat` graph's fake model (tests/graphs/graphs.py).
export const REPLY = "pgqueue streams this reply";

export const DEADLINE_MS = 60_000;

export async function waitFor(what, probe, deadlineMs = DEADLINE_MS) {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not so after ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// The graph `gated` (tests/graphs/clients.py) waits in its node "wait" until
// its gate file exists. The server runs on this machine, so it sees the file.
// The directory outlives the suite (a run may still be about to see its
// gate open); the pytest driver passes one of its temporary directories.
const gateDir = process.env.GATE_DIR ?? mkdtempSync(join(tmpdir(), "pgqueue-js-gates-"));
let gates = 0;
const made = [];

export function gate() {
  const path = join(gateDir, `gate-${process.pid}-${++gates}`);
  made.push(path);
  return { path, open: () => writeFileSync(path, "") };
}

export function openGate() {
  const g = gate();
  g.open();
  return g.path;
}

// A run left waiting at its gate (a failed test) would hold a worker slot
// for minutes.
after(() => {
  for (const path of made) writeFileSync(path, "");
});

export async function insideWait(c, threadId) {
  return waitFor(`thread ${threadId} inside node "wait"`, async () => {
    const state = await c.threads.getState(threadId);
    return state.next?.[0] === "wait" ? state : null;
  });
}

export async function collect(stream, onEvent = () => {}) {
  const events = [];
  for await (const event of stream) {
    events.push(event);
    await onEvent(event, events);
  }
  return events;
}

// Events without the ids a resumable stream adds: what a UI renders.
export const bare = (events) => events.map(({ event, data }) => ({ event, data }));

export async function assistantId(c, graphId) {
  const [found] = await c.assistants.search({ graphId, metadata: { created_by: "system" } });
  if (!found) throw new Error(`no system assistant for graph ${graphId}`);
  return found.assistant_id;
}

export async function rejects(promise, status) {
  try {
    await promise;
  } catch (error) {
    if (error?.status === status) return error;
    throw new Error(`expected HTTP ${status}, got ${error?.status ?? error}: ${error?.message}`);
  }
  throw new Error(`expected HTTP ${status}, the call succeeded`);
}

export const unique = () => `${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;

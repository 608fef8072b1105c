// Streaming as a chat UI consumes it: stream modes, token streaming, and
// resumable streams that survive a page reload (joinStream with
// Last-Event-ID, "-1" for "from the start", as useStream sends it).

import assert from "node:assert/strict";
import { test } from "node:test";

import { REPLY, bare, client, collect, gate, insideWait } from "./helpers.mjs";

const GATED_EVENTS = [
  { event: "values", data: { log: [] } },
  { event: "custom", data: { reached: "first" } },
  { event: "updates", data: { first: { log: ["first"] } } },
  { event: "values", data: { log: ["first"] } },
  { event: "custom", data: { reached: "wait" } },
  { event: "updates", data: { wait: { log: ["wait"] } } },
  { event: "values", data: { log: ["first", "wait"] } },
  { event: "updates", data: { last: { log: ["last"] } } },
  { event: "values", data: { log: ["first", "wait", "last"] } },
];
const MODES = ["values", "updates", "custom"];

// The gated graph keeps its gate in the state: leave it out to compare.
const withoutGate = (events) =>
  bare(events).map(({ event, data }) => {
    if (event !== "values") return { event, data };
    const { gate: _, ...rest } = data;
    return { event, data: rest };
  });

test("values, updates and custom modes stream each step in order, after a metadata event", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  let run;
  const events = await collect(c.runs.stream(thread_id, "gated", {
    input: { log: [] }, streamMode: MODES, onRunCreated: (m) => { run = m; },
  }));
  assert.deepEqual(bare(events), [
    { event: "metadata", data: { run_id: run.run_id, attempt: 1 } },
    ...GATED_EVENTS,
  ]);
  assert.deepEqual(run, { run_id: run.run_id, thread_id });
});

test("without a stream mode a run streams values", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const events = await collect(c.runs.stream(thread_id, "echo", { input: { count: 1 } }));
  assert.deepEqual(bare(events).slice(1), [
    { event: "values", data: { count: 1 } },
    { event: "values", data: { count: 2 } },
  ]);
});

test("messages-tuple streams the chat model's tokens with their node", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const events = await collect(c.runs.stream(thread_id, "chat", {
    input: { messages: [{ role: "user", content: "hi", id: "u1" }] },
    streamMode: ["messages-tuple", "values"],
  }));
  const tokens = events.filter((e) => e.event === "messages");
  assert.ok(tokens.length > 1, `one chunk per word expected, got ${tokens.length}`);
  assert.equal(tokens.map((e) => e.data[0].content).join(""), REPLY);
  const ids = new Set(tokens.map((e) => e.data[0].id));
  assert.equal(ids.size, 1);
  for (const { data: [chunk, meta] } of tokens) {
    assert.equal(chunk.type, "AIMessageChunk");
    assert.equal(meta.langgraph_node, "chat");
    assert.equal(meta.thread_id, thread_id);
  }
  const final = events.filter((e) => e.event === "values").at(-1).data.messages;
  assert.deepEqual(final.map((m) => [m.type, m.content]), [["human", "hi"], ["ai", REPLY]]);
  assert.equal(final[1].id, [...ids][0]);
});

test("events mode streams the run's callback events, from chain start to chain end", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const events = (await collect(c.runs.stream(thread_id, "echo", {
    input: { count: 1 }, streamMode: ["events"],
  }))).filter((e) => e.event === "events");
  const kinds = events.map((e) => e.data.event);
  assert.equal(kinds[0], "on_chain_start");
  assert.deepEqual(events[0].data.data.input, { count: 1 });
  assert.ok(kinds.includes("on_chain_stream"), kinds.join());
  assert.equal(kinds.at(-1), "on_chain_end");
  assert.deepEqual(events.at(-1).data.data.output, { count: 2 });
});

test("a page reload: the resumable stream is dropped, joinStream -1 replays it from the start", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const reload = new AbortController();
  let run;
  const before = await collect(
    c.runs.stream(thread_id, "gated", {
      input: { log: [], gate: g.path }, streamMode: MODES, streamResumable: true,
      onDisconnect: "continue", signal: reload.signal, onRunCreated: (m) => { run = m; },
    }),
    (e) => { if (e.event === "values" && e.data.log.length === 1) reload.abort(); },
  );
  assert.deepEqual(withoutGate(before).slice(1), GATED_EVENTS.slice(0, 4));
  assert.ok(before.every((e) => e.id), "a resumable stream's events carry ids");

  // The run goes on without a listener; the new page joins from the start
  // and lets the run finish once it has caught up.
  const replayed = await collect(
    c.runs.joinStream(thread_id, run.run_id, { lastEventId: "-1" }),
    (e) => { if (e.event === "values" && e.data.log.length === 1) g.open(); },
  );
  assert.deepEqual(bare(replayed).slice(0, before.length), bare(before));
  assert.deepEqual(replayed.slice(0, before.length).map((e) => e.id), before.map((e) => e.id));
  assert.deepEqual(withoutGate(replayed).slice(1), GATED_EVENTS);
  assert.equal((await c.runs.get(thread_id, run.run_id)).status, "success");

  // After the run: "-1" still replays all of it, and an event's id resumes
  // right after that event.
  const again = await collect(c.runs.joinStream(thread_id, run.run_id, { lastEventId: "-1" }));
  assert.deepEqual(again, replayed);
  const resumeAt = replayed.findIndex((e) => e.event === "values" && e.data.log.length === 1);
  const rest = await collect(c.runs.joinStream(thread_id, run.run_id, { lastEventId: replayed[resumeAt].id }));
  assert.deepEqual(rest, replayed.slice(resumeAt + 1));
});

test("a dropped connection resumes from its last event id while the run goes on", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const run = await c.runs.create(thread_id, "gated", {
    input: { log: [], gate: g.path }, streamMode: MODES, streamResumable: true,
  });
  await insideWait(c, thread_id);
  const drop = new AbortController();
  const first = await collect(
    c.runs.joinStream(thread_id, run.run_id, { lastEventId: "-1", signal: drop.signal }),
    (e) => { if (e.event === "values" && e.data.log.length === 1) drop.abort(); },
  );
  assert.deepEqual(withoutGate(first).slice(1), GATED_EVENTS.slice(0, 4));
  g.open();
  const rest = await collect(c.runs.joinStream(thread_id, run.run_id, { lastEventId: first.at(-1).id }));
  assert.deepEqual(withoutGate(rest), GATED_EVENTS.slice(4));
  assert.deepEqual(withoutGate([...first, ...rest]).slice(1), GATED_EVENTS);
});

test("joinStream without an event id streams only what happens after it joined", async () => {
  let joined;
  const connected = new Promise((resolve) => { joined = resolve; });
  // The response to the join has arrived: the server is listening.
  const c = client({
    fetch: async (url, init) => {
      const response = await fetch(url, init);
      if ((init?.method ?? "GET") === "GET" && String(url).includes("/stream")) joined();
      return response;
    },
  });
  const { thread_id } = await c.threads.create();
  const g = gate();
  const run = await c.runs.create(thread_id, "gated", {
    input: { log: [], gate: g.path }, streamMode: MODES, streamResumable: true,
  });
  await insideWait(c, thread_id);
  connected.then(() => g.open());
  const live = await collect(c.runs.joinStream(thread_id, run.run_id));
  assert.deepEqual(withoutGate(live), GATED_EVENTS.slice(4));
  assert.deepEqual(await collect(c.runs.joinStream(thread_id, run.run_id)), [], "the run is over");
});

test("a resumable token stream replays every token", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const run = await c.runs.create(thread_id, "chat", {
    input: { messages: [{ role: "user", content: "hi" }] },
    streamMode: ["messages-tuple"], streamResumable: true,
  });
  await c.runs.join(thread_id, run.run_id);
  const events = await collect(c.runs.joinStream(thread_id, run.run_id, { lastEventId: "-1" }));
  assert.equal(events[0].event, "metadata");
  const tokens = events.filter((e) => e.event === "messages").map((e) => e.data[0].content);
  assert.equal(tokens.join(""), REPLY);
});

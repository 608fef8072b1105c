// Runs without a thread (a one-shot call from a page), the requests a
// server must refuse, and crons as a settings page manages them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { assistantId, bare, client, collect, rejects, unique } from "./helpers.mjs";

test("a stateless wait answers the values and leaves no thread behind", async () => {
  const c = client();
  let created;
  const values = await c.runs.wait(null, "echo", { input: { count: 1 }, onRunCreated: (m) => { created = m; } });
  assert.deepEqual(values, { count: 2 });
  assert.ok(created.thread_id, "the run's temporary thread is named in Content-Location");
  await rejects(c.threads.get(created.thread_id), 404);
});

test("a stateless stream streams like a thread's", async () => {
  const c = client();
  const events = await collect(c.runs.stream(null, "echo", { input: { count: 5 }, streamMode: ["values", "updates"] }));
  assert.equal(events[0].event, "metadata");
  assert.deepEqual(bare(events).slice(1), [
    { event: "values", data: { count: 5 } },
    { event: "updates", data: { echo: { count: 6 } } },
    { event: "values", data: { count: 6 } },
  ]);
});

test("a stateless run kept on completion leaves its thread with the final state", async () => {
  const c = client();
  let created;
  await c.runs.wait(null, "echo", {
    input: { count: 1 }, onCompletion: "keep", onRunCreated: (m) => { created = m; },
  });
  const thread = await c.threads.get(created.thread_id);
  assert.equal(thread.status, "idle");
  assert.deepEqual(thread.values, { count: 2 });
});

test("resuming needs a thread: 400", async () => {
  await rejects(client().runs.wait(null, "asks", { command: { resume: 1 } }), 400);
});

test("configurable and context together: 400", async () => {
  await rejects(client().runs.wait(null, "echo", {
    input: {}, config: { configurable: { a: 1 } }, context: { a: 1 },
  }), 400);
});

test("a run for an assistant that is neither an id nor a graph: 422", async () => {
  await rejects(client().runs.wait(null, "no-such-graph", { input: {} }), 422);
});

test("crons: create, find by assistant, reschedule, delete", async () => {
  const c = client();
  // An assistant of this test's own: other tests' crons are not counted.
  const { assistant_id } = await c.assistants.create({ graphId: "echo", metadata: { tag: unique() } });
  const cron = await c.crons.create(assistant_id, { schedule: "17 3 * * *", input: { count: 1 }, metadata: { tag: "t" } });
  assert.equal(cron.assistant_id, assistant_id);
  assert.equal(cron.thread_id, null);
  assert.equal(cron.schedule, "17 3 * * *");
  assert.deepEqual(cron.metadata, { tag: "t" });
  assert.equal(cron.enabled, true);
  assert.match(cron.next_run_date, /T03:17:00/);
  assert.deepEqual(cron.payload.input, { count: 1 });

  assert.deepEqual((await c.crons.search({ assistantId: assistant_id })).map((x) => x.cron_id), [cron.cron_id]);
  assert.equal(await c.crons.count({ assistantId: assistant_id }), 1);

  const moved = await c.crons.update(cron.cron_id, { schedule: "18 4 * * *" });
  assert.equal(moved.schedule, "18 4 * * *");
  assert.match(moved.next_run_date, /T04:18:00/);

  await c.crons.delete(cron.cron_id);
  assert.deepEqual(await c.crons.search({ assistantId: assistant_id }), []);
  await rejects(c.crons.delete(cron.cron_id), 404);
  await c.assistants.delete(assistant_id);
});

test("a thread's cron is found by its thread; a graph id names the assistant", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const cron = await c.crons.createForThread(thread_id, "echo", { schedule: "*/5 * * * *", input: { count: 2 } });
  assert.equal(cron.thread_id, thread_id);
  assert.equal(cron.assistant_id, await assistantId(c, "echo"));
  assert.deepEqual((await c.crons.search({ threadId: thread_id })).map((x) => x.cron_id), [cron.cron_id]);
  await c.crons.delete(cron.cron_id);
  assert.deepEqual(await c.crons.search({ threadId: thread_id }), []);
});

test("a schedule that is not one: 422", async () => {
  const c = client();
  await rejects(c.crons.create(await assistantId(c, "echo"), { schedule: "not a schedule" }), 422);
});

// Threads as a chat UI keeps them: a sidebar of threads (search), the
// conversation (getState), time travel (getHistory, checkpoints), edits
// (updateState), and copies.

import assert from "node:assert/strict";
import { test } from "node:test";

import { assistantId, client, rejects, unique } from "./helpers.mjs";

const NEXTS = [[], ["last"], ["wait"], ["first"], ["__start__"]];

async function ranThread(c, metadata = {}) {
  const thread = await c.threads.create({ metadata });
  await c.runs.wait(thread.thread_id, "gated", { input: { log: ["in"] } });
  return thread;
}

test("a new thread is idle, has no state and no history", async () => {
  const c = client();
  const tag = unique();
  const thread = await c.threads.create({ metadata: { tag } });
  assert.equal(thread.status, "idle");
  assert.deepEqual(thread.metadata, { tag });
  const got = await c.threads.get(thread.thread_id);
  assert.deepEqual([got.thread_id, got.status, got.metadata], [thread.thread_id, "idle", { tag }]);
  const state = await c.threads.getState(thread.thread_id);
  assert.deepEqual(state.values, {});
  assert.deepEqual(state.next, []);
  assert.deepEqual(state.tasks, []);
  assert.equal(state.checkpoint_id ?? null, null);
  assert.deepEqual(await c.threads.getHistory(thread.thread_id), []);
  assert.deepEqual(
    (await c.threads.search({ metadata: { tag } })).map((t) => t.thread_id),
    [thread.thread_id],
  );
});

test("a run tags its thread with the graph and assistant, so a UI can list a graph's threads", async () => {
  const c = client();
  const tag = unique();
  const thread = await ranThread(c, { tag });
  const after = await c.threads.get(thread.thread_id);
  assert.equal(after.status, "idle");
  assert.deepEqual(after.values, { log: ["in", "first", "wait", "last"] });
  assert.deepEqual(after.metadata, { tag, graph_id: "gated", assistant_id: await assistantId(c, "gated") });
  assert.deepEqual(
    (await c.threads.search({ metadata: { graph_id: "gated", tag } })).map((t) => t.thread_id),
    [thread.thread_id],
  );
});

test("getState shows the latest checkpoint, getHistory every one, newest first", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const state = await c.threads.getState(thread_id);
  assert.deepEqual(state.values, { log: ["in", "first", "wait", "last"] });
  assert.deepEqual(state.next, []);
  assert.equal(state.metadata.source, "loop");
  assert.equal(state.metadata.step, 3);
  assert.equal(state.checkpoint.checkpoint_id, state.checkpoint_id);
  assert.equal(state.checkpoint.thread_id, thread_id);

  const history = await c.threads.getHistory(thread_id, { limit: 100 });
  assert.deepEqual(history.map((s) => s.next), NEXTS);
  assert.deepEqual(history.map((s) => s.metadata.step), [3, 2, 1, 0, -1]);
  assert.equal(history[0].checkpoint_id, state.checkpoint_id);
  for (let i = 0; i + 1 < history.length; i++) {
    assert.equal(history[i].parent_checkpoint.checkpoint_id, history[i + 1].checkpoint_id);
  }
  assert.equal(history.at(-1).metadata.source, "input");
  assert.deepEqual((await c.threads.getHistory(thread_id, { limit: 2 })).map((s) => s.next), NEXTS.slice(0, 2));
});

test("getHistory pages with `before` and filters on metadata", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const history = await c.threads.getHistory(thread_id, { limit: 100 });
  const atWait = history[2];
  const older = await c.threads.getHistory(thread_id, {
    before: { configurable: { checkpoint_id: atWait.checkpoint_id } },
  });
  assert.deepEqual(older.map((s) => s.checkpoint_id), history.slice(3).map((s) => s.checkpoint_id));
  const inputs = await c.threads.getHistory(thread_id, { metadata: { source: "input" } });
  assert.deepEqual(inputs.map((s) => s.checkpoint_id), [history.at(-1).checkpoint_id]);
});

test("getState at a past checkpoint shows what was next then", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const history = await c.threads.getHistory(thread_id, { limit: 100 });
  const past = await c.threads.getState(thread_id, history[2].checkpoint_id);
  assert.equal(past.checkpoint_id, history[2].checkpoint_id);
  assert.deepEqual(past.values, { log: ["in", "first"] });
  assert.deepEqual(past.next, ["wait"]);
  assert.deepEqual(past.tasks.map((t) => t.name), ["wait"]);
});

test("updateState writes a checkpoint as a node and answers its config", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const written = await c.threads.updateState(thread_id, { values: { log: ["patched"] }, asNode: "last" });
  const state = await c.threads.getState(thread_id);
  assert.equal(written.configurable?.checkpoint_id, state.checkpoint_id);
  assert.equal(written.configurable?.thread_id, thread_id);
  assert.deepEqual(state.values, { log: ["in", "first", "wait", "last", "patched"] });
  assert.deepEqual(state.next, []);
  assert.equal(state.metadata.source, "update");
  assert.equal(state.metadata.step, 4);
});

test("updateState at a past checkpoint forks the thread from there", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const atWait = (await c.threads.getHistory(thread_id, { limit: 100 }))[2];
  await c.threads.updateState(thread_id, {
    values: { log: ["edited"] }, checkpointId: atWait.checkpoint_id, asNode: "wait",
  });
  const state = await c.threads.getState(thread_id);
  assert.deepEqual(state.values, { log: ["in", "first", "edited"] });
  assert.deepEqual(state.next, ["last"]);
  assert.equal(state.parent_checkpoint.checkpoint_id, atWait.checkpoint_id);
  const resumed = await c.runs.wait(thread_id, "gated", { input: null });
  assert.deepEqual(resumed, { log: ["in", "first", "edited", "last"] });
});

test("a run from a past checkpoint replays from there (regenerate, edit a message)", async () => {
  const c = client();
  const { thread_id } = await ranThread(c);
  const atWait = (await c.threads.getHistory(thread_id, { limit: 100 }))[2];
  const again = await c.runs.wait(thread_id, "gated", {
    input: null, checkpoint: { checkpoint_id: atWait.checkpoint_id },
  });
  assert.deepEqual(again, { log: ["in", "first", "wait", "last"] });
  // A new branch: a "fork" copy of the checkpoint, then the steps after it.
  const history = await c.threads.getHistory(thread_id, { limit: 100 });
  assert.equal(history.length, 8);
  assert.deepEqual(history.slice(0, 3).map((s) => [s.next, s.metadata.source]), [
    [[], "loop"], [["last"], "loop"], [["wait"], "fork"],
  ]);
  assert.equal(history[2].parent_checkpoint.checkpoint_id, atWait.checkpoint_id);
  const edited = await c.runs.wait(thread_id, "gated", {
    input: { log: ["edited"] }, checkpointId: atWait.checkpoint_id,
  });
  assert.deepEqual(edited, { log: ["in", "first", "edited", "first", "wait", "last"] });
});

test("copy gives a new thread with the same metadata, state and history", async () => {
  const c = client();
  const tag = unique();
  const original = await ranThread(c, { tag });
  const copy = await c.threads.copy(original.thread_id);
  assert.notEqual(copy.thread_id, original.thread_id);
  assert.deepEqual(copy.metadata, (await c.threads.get(original.thread_id)).metadata);
  const state = await c.threads.getState(copy.thread_id);
  assert.deepEqual(state.values, { log: ["in", "first", "wait", "last"] });
  assert.equal(state.checkpoint.thread_id, copy.thread_id);
  const history = await c.threads.getHistory(copy.thread_id, { limit: 100 });
  assert.deepEqual(history.map((s) => s.next), NEXTS);
  // The copy goes on by itself: the original does not move.
  await c.threads.updateState(copy.thread_id, { values: { log: ["copy only"] }, asNode: "last" });
  assert.deepEqual((await c.threads.getState(original.thread_id)).values.log, ["in", "first", "wait", "last"]);
});

test("search finds threads by status; update merges metadata; delete removes", async () => {
  const c = client();
  const tag = unique();
  const asked = await c.threads.create({ metadata: { tag } });
  await c.runs.wait(asked.thread_id, "asks", { input: {} });
  const idle = await c.threads.create({ metadata: { tag } });
  const found = async (status) =>
    (await c.threads.search({ metadata: { tag }, status })).map((t) => t.thread_id);
  assert.deepEqual(await found("interrupted"), [asked.thread_id]);
  assert.deepEqual(await found("idle"), [idle.thread_id]);
  assert.equal(await c.threads.count({ metadata: { tag } }), 2);

  const updated = await c.threads.update(idle.thread_id, { metadata: { title: "renamed" } });
  assert.deepEqual(updated.metadata, { tag, title: "renamed" });
  await c.threads.delete(idle.thread_id);
  await rejects(c.threads.get(idle.thread_id), 404);
  assert.deepEqual(await found(undefined), [asked.thread_id]);
});

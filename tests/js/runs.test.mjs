// Runs as an app starts, waits for, resumes and stops them: background runs
// (create, join), runs.wait, human-in-the-loop interrupts resumed with a
// command, failures, cancelling, and what a second message does to a busy
// thread (multitask strategies).

import assert from "node:assert/strict";
import { test } from "node:test";

import { assistantId, client, gate, insideWait, openGate, rejects, waitFor } from "./helpers.mjs";

const QUESTION = { question: "what is the answer?" };

test("a background run: create answers it pending, join its values, get its status", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  let created;
  const run = await c.runs.create(thread_id, "echo", {
    input: { count: 1 }, metadata: { from: "js" }, onRunCreated: (meta) => { created = meta; },
  });
  assert.equal(run.thread_id, thread_id);
  assert.equal(run.assistant_id, await assistantId(c, "echo"));
  assert.equal(run.multitask_strategy, "enqueue");
  assert.ok(["pending", "running"].includes(run.status), run.status);
  assert.deepEqual(created, { run_id: run.run_id, thread_id });
  assert.deepEqual(await c.runs.join(thread_id, run.run_id), { count: 2 });
  const done = await c.runs.get(thread_id, run.run_id);
  assert.equal(done.status, "success");
  assert.equal(done.metadata.from, "js");
  assert.deepEqual((await c.runs.list(thread_id)).map((r) => r.run_id), [run.run_id]);
});

test("runs.wait answers the final values; runs.list lists newest first", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  let first;
  assert.deepEqual(
    await c.runs.wait(thread_id, "echo", { input: { count: 1 }, onRunCreated: (m) => { first = m; } }),
    { count: 2 },
  );
  assert.deepEqual(await c.runs.wait(thread_id, "echo", { input: { count: 10 } }), { count: 11 });
  const runs = await c.runs.list(thread_id);
  assert.equal(runs.length, 2);
  assert.equal(runs[1].run_id, first.run_id);
  assert.deepEqual(runs.map((r) => r.status), ["success", "success"]);
});

test("interrupt(): the thread waits for an answer; a resume command gives it", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  let run;
  const asked = await c.runs.wait(thread_id, "asks", { input: {}, onRunCreated: (m) => { run = m; } });
  assert.deepEqual(asked.log, []);
  assert.equal(asked.__interrupt__.length, 1);
  const [interrupt] = asked.__interrupt__;
  assert.deepEqual(interrupt.value, QUESTION);
  assert.equal(typeof interrupt.id, "string");

  assert.equal((await c.runs.get(thread_id, run.run_id)).status, "success");
  const thread = await c.threads.get(thread_id);
  assert.equal(thread.status, "interrupted");
  assert.deepEqual(Object.values(thread.interrupts), [[{ id: interrupt.id, value: QUESTION }]]);
  const state = await c.threads.getState(thread_id);
  assert.deepEqual(state.next, ["ask"]);
  assert.deepEqual(state.interrupts, [{ id: interrupt.id, value: QUESTION }]);
  assert.deepEqual(state.tasks.map((t) => [t.name, t.interrupts]), [["ask", [{ id: interrupt.id, value: QUESTION }]]]);

  const resumed = await c.runs.create(thread_id, "asks", { command: { resume: { answer: 42 } } });
  assert.deepEqual(await c.runs.join(thread_id, resumed.run_id), { log: ["asked"], answer: { answer: 42 } });
  assert.equal((await c.threads.get(thread_id)).status, "idle");
  assert.deepEqual((await c.threads.getState(thread_id)).next, []);
});

test("a streamed interrupt arrives as an __interrupt__ update, and the resume streams too", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const asking = [];
  for await (const e of c.runs.stream(thread_id, "asks", { input: {}, streamMode: ["updates"] })) asking.push(e);
  assert.deepEqual(asking.map((e) => e.event), ["metadata", "updates"]);
  const [interrupt] = asking[1].data.__interrupt__;
  assert.deepEqual(interrupt.value, QUESTION);

  const resuming = [];
  for await (const e of c.runs.stream(thread_id, "asks", {
    command: { resume: 42 }, streamMode: ["values", "updates"],
  })) resuming.push(e);
  assert.deepEqual(resuming.slice(1).map(({ event, data }) => ({ event, data })), [
    { event: "values", data: { log: [] } },
    { event: "updates", data: { ask: { answer: 42, log: ["asked"] } } },
    { event: "values", data: { log: ["asked"], answer: 42 } },
  ]);
});

test("a failing run: wait throws, join and stream report the error, the thread is in error", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const error = { error: "ValueError", message: "the node failed on purpose" };
  await assert.rejects(c.runs.wait(thread_id, "fails", { input: {} }), {
    message: "ValueError: the node failed on purpose",
  });
  assert.deepEqual(await c.runs.wait(thread_id, "fails", { input: {}, raiseError: false }), { __error__: error });
  const events = [];
  for await (const e of c.runs.stream(thread_id, "fails", { input: {} })) events.push(e);
  assert.deepEqual(events.map((e) => e.event), ["metadata", "error"]);
  assert.deepEqual(events[1].data, error);
  const run = await c.runs.create(thread_id, "fails", { input: {} });
  assert.deepEqual(await c.runs.join(thread_id, run.run_id), { __error__: error });
  assert.equal((await c.runs.get(thread_id, run.run_id)).status, "error");
  assert.equal((await c.threads.get(thread_id)).status, "error");
});

test("cancel stops a run inside a node: interrupted, resumable from the node it was in", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const run = await c.runs.create(thread_id, "gated", { input: { gate: g.path } });
  await insideWait(c, thread_id);
  await c.runs.cancel(thread_id, run.run_id, true);
  assert.equal((await c.runs.get(thread_id, run.run_id)).status, "interrupted");
  assert.equal((await c.threads.get(thread_id)).status, "interrupted");
  const state = await c.threads.getState(thread_id);
  assert.deepEqual(state.values.log, ["first"]);
  assert.deepEqual(state.next, ["wait"]);
  assert.deepEqual((await c.runs.join(thread_id, run.run_id)).log, ["first"]);
  await rejects(c.runs.cancel(thread_id, run.run_id), 404);

  g.open();
  assert.deepEqual((await c.runs.wait(thread_id, "gated", { input: null })).log, ["first", "wait", "last"]);
});

test("cancel with rollback deletes the run and everything it wrote", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  await c.runs.wait(thread_id, "gated", { input: { log: ["before"] } });
  const run = await c.runs.create(thread_id, "gated", { input: { gate: gate().path } });
  await insideWait(c, thread_id);
  await c.runs.cancel(thread_id, run.run_id, true, "rollback");
  await rejects(c.runs.get(thread_id, run.run_id), 404);
  assert.equal((await c.threads.get(thread_id)).status, "idle");
  assert.deepEqual((await c.threads.getState(thread_id)).values.log, ["before", "first", "wait", "last"]);
  assert.equal((await c.threads.getHistory(thread_id, { limit: 100 })).length, 5);
});

test("a pending run cancelled before it starts never runs", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const first = await c.runs.create(thread_id, "gated", { input: { gate: g.path } });
  const second = await c.runs.create(thread_id, "gated", { input: { log: ["never"] } });
  await c.runs.cancel(thread_id, second.run_id);
  assert.equal((await c.runs.get(thread_id, second.run_id)).status, "interrupted");
  g.open();
  const values = await c.runs.join(thread_id, first.run_id);
  assert.deepEqual(values.log, ["first", "wait", "last"]);
  assert.equal((await c.runs.get(thread_id, second.run_id)).status, "interrupted");
  // Joining it answers the thread as it stands: the run added nothing.
  assert.deepEqual(await c.runs.join(thread_id, second.run_id), values);
});

test("the stop button: a stream aborted with onDisconnect cancel interrupts its run", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const stop = new AbortController();
  let run;
  const seen = [];
  for await (const e of c.runs.stream(thread_id, "gated", {
    input: { gate: gate().path }, streamMode: ["values"], onDisconnect: "cancel",
    signal: stop.signal, onRunCreated: (m) => { run = m; },
  })) {
    seen.push(e.event);
    if (e.event === "values" && e.data.log.length === 1) stop.abort();
  }
  assert.deepEqual(seen, ["metadata", "values", "values"]);
  await waitFor("the run to be interrupted", async () =>
    (await c.runs.get(thread_id, run.run_id)).status === "interrupted");
  assert.equal((await c.threads.get(thread_id)).status, "interrupted");
  assert.deepEqual((await c.threads.getState(thread_id)).next, ["wait"]);
});

test("multitask reject: a second run on a busy thread is refused with 409", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const run = await c.runs.create(thread_id, "gated", { input: { gate: g.path } });
  await rejects(c.runs.create(thread_id, "gated", { input: {}, multitaskStrategy: "reject" }), 409);
  await rejects(c.runs.wait(thread_id, "gated", { input: {}, multitaskStrategy: "reject" }), 409);
  g.open();
  assert.deepEqual((await c.runs.join(thread_id, run.run_id)).log, ["first", "wait", "last"]);
  assert.deepEqual((await c.runs.list(thread_id)).map((r) => r.run_id), [run.run_id]);
});

test("multitask interrupt: the busy run stops where it is, the new one goes on from there", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const first = await c.runs.create(thread_id, "gated", { input: { gate: gate().path } });
  await insideWait(c, thread_id);
  const second = await c.runs.create(thread_id, "gated", {
    input: { gate: openGate() }, multitaskStrategy: "interrupt",
  });
  assert.equal(second.multitask_strategy, "interrupt");
  assert.deepEqual((await c.runs.join(thread_id, second.run_id)).log, ["first", "first", "wait", "last"]);
  assert.equal((await c.runs.get(thread_id, first.run_id)).status, "interrupted");
  assert.deepEqual((await c.runs.list(thread_id)).map((r) => [r.run_id, r.status]), [
    [second.run_id, "success"], [first.run_id, "interrupted"],
  ]);
});

test("multitask rollback: the busy run and its checkpoints are gone", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const first = await c.runs.create(thread_id, "gated", { input: { gate: gate().path } });
  await insideWait(c, thread_id);
  const second = await c.runs.create(thread_id, "gated", {
    input: { gate: openGate() }, multitaskStrategy: "rollback",
  });
  assert.deepEqual((await c.runs.join(thread_id, second.run_id)).log, ["first", "wait", "last"]);
  await rejects(c.runs.get(thread_id, first.run_id), 404);
  assert.deepEqual((await c.runs.list(thread_id)).map((r) => r.run_id), [second.run_id]);
  assert.equal((await c.threads.getHistory(thread_id, { limit: 100 })).length, 5);
});

test("multitask enqueue: the second run waits its turn, then runs on the first one's state", async () => {
  const c = client();
  const { thread_id } = await c.threads.create();
  const g = gate();
  const first = await c.runs.create(thread_id, "gated", { input: { gate: g.path } });
  const second = await c.runs.create(thread_id, "gated", {
    input: { gate: openGate() }, multitaskStrategy: "enqueue",
  });
  await insideWait(c, thread_id);
  assert.equal((await c.runs.get(thread_id, first.run_id)).status, "running");
  assert.equal((await c.runs.get(thread_id, second.run_id)).status, "pending");
  assert.equal((await c.threads.get(thread_id)).status, "busy");
  g.open();
  assert.deepEqual(
    (await c.runs.join(thread_id, second.run_id)).log,
    ["first", "wait", "last", "first", "wait", "last"],
  );
  assert.equal((await c.runs.get(thread_id, first.run_id)).status, "success");
});

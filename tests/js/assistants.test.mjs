// Assistants as a UI finds them: the graph picker (search, paging), the
// graph view (getGraph) and the input form (getSchemas).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { assistantId, client, rejects, unique } from "./helpers.mjs";

const GRAPHS = [
  "absorbs_a_cancel", "asks", "chaos_chain", "chat", "echo", "fails", "flaky", "gated", "three_steps",
  "ticks", "with_tasks",
];

// uuid5(namespace, graph_id): UIs hard-code these ids, so they must not
// depend on the server's database.
function uuid5(namespace, name) {
  const ns = Buffer.from(namespace.replaceAll("-", ""), "hex");
  const hash = createHash("sha1").update(ns).update(name).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
const SYSTEM_NAMESPACE = "6ba7b821-9dad-11d1-80b4-00c04fd430c8";

test("each graph has one system assistant, named after it, with a stable id", async () => {
  const c = client();
  for (const graphId of ["asks", "chat", "gated"]) {
    const found = await c.assistants.search({ graphId, metadata: { created_by: "system" } });
    assert.equal(found.length, 1, graphId);
    const [a] = found;
    assert.equal(a.graph_id, graphId);
    assert.equal(a.name, graphId);
    assert.equal(a.assistant_id, uuid5(SYSTEM_NAMESPACE, graphId));
    assert.deepEqual(a.metadata, { created_by: "system" });
    assert.equal(a.version, 1);
    assert.deepEqual(await c.assistants.get(a.assistant_id), a);
  }
});

test("paging through the search with X-Pagination-Next reaches every graph once", async () => {
  const c = client();
  const seen = [];
  let offset = 0;
  for (;;) {
    const page = await c.assistants.search({
      metadata: { created_by: "system" }, limit: 3, offset, includePagination: true,
    });
    assert.ok(page.assistants.length <= 3);
    seen.push(...page.assistants.map((a) => a.graph_id));
    if (page.next == null) break;
    assert.equal(page.next, String(offset + 3));
    offset = Number(page.next);
  }
  assert.deepEqual([...seen].sort(), GRAPHS);
});

test("an assistant of one's own is found by its metadata, then deleted", async () => {
  const c = client();
  const owner = unique();
  const mine = await c.assistants.create({
    graphId: "echo", name: "mine", metadata: { owner }, config: { configurable: { x: 1 } },
  });
  assert.equal(mine.graph_id, "echo");
  assert.equal(mine.name, "mine");
  assert.deepEqual(mine.config.configurable, { x: 1 });
  assert.deepEqual(
    (await c.assistants.search({ metadata: { owner } })).map((a) => a.assistant_id),
    [mine.assistant_id],
  );
  await c.assistants.delete(mine.assistant_id);
  await rejects(c.assistants.get(mine.assistant_id), 404);
  assert.deepEqual(await c.assistants.search({ metadata: { owner } }), []);
});

test("an unknown assistant id answers 404", async () => {
  await rejects(client().assistants.get("00000000-0000-4000-8000-000000000000"), 404);
});

test("getGraph draws the graph's nodes and edges", async () => {
  const c = client();
  const graph = await c.assistants.getGraph(await assistantId(c, "gated"));
  assert.deepEqual(graph.nodes.map((n) => n.id), ["__start__", "first", "wait", "last", "__end__"]);
  assert.deepEqual(graph.edges.map(({ source, target }) => [source, target]), [
    ["__start__", "first"], ["first", "wait"], ["wait", "last"], ["last", "__end__"],
  ]);
});

test("getSchemas describes a TypedDict state channel by channel", async () => {
  const c = client();
  const schemas = await c.assistants.getSchemas(await assistantId(c, "gated"));
  assert.equal(schemas.graph_id, "gated");
  assert.ok(schemas.state_schema, "state_schema is null");
  const { properties } = schemas.state_schema;
  assert.deepEqual(Object.keys(properties).sort(), ["gate", "log"]);
  assert.equal(properties.log.type, "array");
  assert.deepEqual(properties.log.items, { type: "string" });
  assert.equal(properties.gate.type, "string");
});

test("getSchemas describes a messages state, input included", async () => {
  const c = client();
  const schemas = await c.assistants.getSchemas(await assistantId(c, "chat"));
  assert.equal(schemas.graph_id, "chat");
  for (const which of ["state_schema", "input_schema"]) {
    const messages = schemas[which]?.properties?.messages;
    assert.ok(messages, `${which} has no messages property`);
    assert.equal(messages.type, "array");
  }
});

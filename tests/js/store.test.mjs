// The store as an app keeps user data in it: items under namespaces, looked
// up by key, searched by prefix and filter, listed by namespace.

import assert from "node:assert/strict";
import { test } from "node:test";

import { client, unique } from "./helpers.mjs";

async function seeded(c) {
  const root = ["js", unique()];
  await c.store.putItem([...root, "prefs"], "theme", { color: "dark", size: 3 });
  await c.store.putItem([...root, "prefs"], "lang", { code: "fr", size: 5 });
  await c.store.putItem([...root, "notes", "deep"], "n1", { text: "hello" });
  return root;
}

const keys = (result) => result.items.map((i) => i.key).sort();

test("put then get: the item with its namespace, key, value and timestamps", async () => {
  const c = client();
  const root = await seeded(c);
  const item = await c.store.getItem([...root, "prefs"], "theme");
  assert.deepEqual(item.namespace, [...root, "prefs"]);
  assert.equal(item.key, "theme");
  assert.deepEqual(item.value, { color: "dark", size: 3 });
  assert.ok(item.createdAt && item.updatedAt, "timestamps");
  assert.equal(item.createdAt, item.created_at);
});

test("a missing item is null, not an error", async () => {
  const c = client();
  const root = await seeded(c);
  assert.equal(await c.store.getItem([...root, "prefs"], "missing"), null);
  assert.equal(await c.store.getItem([...root, "nowhere"], "theme"), null);
});

test("put on an existing key replaces the value", async () => {
  const c = client();
  const root = await seeded(c);
  await c.store.putItem([...root, "prefs"], "theme", { color: "light" });
  const item = await c.store.getItem([...root, "prefs"], "theme");
  assert.deepEqual(item.value, { color: "light" });
  assert.ok(item.updatedAt >= item.createdAt);
});

test("search by namespace prefix, by filter, and by page", async () => {
  const c = client();
  const root = await seeded(c);
  assert.deepEqual(keys(await c.store.searchItems(root)), ["lang", "n1", "theme"]);
  assert.deepEqual(keys(await c.store.searchItems([...root, "prefs"])), ["lang", "theme"]);
  assert.deepEqual(keys(await c.store.searchItems(root, { filter: { size: 5 } })), ["lang"]);
  const pages = [];
  for (let offset = 0; offset < 4; offset++) {
    pages.push(...(await c.store.searchItems(root, { limit: 1, offset })).items.map((i) => i.key));
  }
  assert.deepEqual(pages.sort(), ["lang", "n1", "theme"]);
});

test("listNamespaces by prefix, suffix and depth", async () => {
  const c = client();
  const root = await seeded(c);
  const sorted = (r) => r.namespaces.map((n) => n.join("/")).sort();
  assert.deepEqual(sorted(await c.store.listNamespaces({ prefix: root })), [
    [...root, "notes", "deep"].join("/"), [...root, "prefs"].join("/"),
  ]);
  assert.deepEqual(sorted(await c.store.listNamespaces({ prefix: root, maxDepth: 3 })), [
    [...root, "notes"].join("/"), [...root, "prefs"].join("/"),
  ]);
  assert.deepEqual(sorted(await c.store.listNamespaces({ prefix: root, suffix: ["deep"] })), [
    [...root, "notes", "deep"].join("/"),
  ]);
});

test("delete removes the item; deleting again is no error", async () => {
  const c = client();
  const root = await seeded(c);
  await c.store.deleteItem([...root, "prefs"], "theme");
  assert.deepEqual(keys(await c.store.searchItems(root)), ["lang", "n1"]);
  await c.store.deleteItem([...root, "prefs"], "theme");
});

"""Authorization, continued from tests/server/test_authorization.py (threads,
runs and crons): each user's assistants and store under
tests/graphs/auth/owners.py (``owners_server`` in tests/server/conftest.py),
and two other Auths: threads_only.py (the warning about uncovered actions)
and odd_handlers.py (``$or``/``$contains`` filters, and answers that must be
refused).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import dbs
from tests.support.server import ServerProcess, server_process
from tests.support.two_users import (
    SYSTEM_ASSISTANT,
    auth_config,
    client_of,
    fresh,
    ids,
    status_of,
)

# -- each user's own assistants and store -------------------------------------


async def test_each_user_sees_only_its_own_assistants_and_the_system_ones(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    mine = await ca.assistants.create("whoami", name="a's", metadata={"k": 1})
    assert mine["metadata"] == {"k": 1, "owner": a}
    theirs = await cb.assistants.create("whoami")
    aid = mine["assistant_id"]
    await ca.assistants.update(aid, metadata={"k": 2})  # version 2

    assert ids(await ca.assistants.search(limit=100), "assistant_id") == {aid, SYSTEM_ASSISTANT}
    assert ids(await cb.assistants.search(limit=100), "assistant_id") == {
        theirs["assistant_id"],
        SYSTEM_ASSISTANT,
    }
    assert await ca.assistants.count() == 2
    assert await cb.assistants.count() == 2
    assert await cb.assistants.search(metadata={"owner": a}) == []
    assert await cb.assistants.count(metadata={"owner": a}) == 0
    # The system assistant is everybody's, by id or by graph id.
    assert (await cb.assistants.get(SYSTEM_ASSISTANT))["graph_id"] == "whoami"
    assert (await cb.assistants.get("whoami"))["assistant_id"] == SYSTEM_ASSISTANT

    before = await ca.assistants.get(aid)
    versions_before = await ca.assistants.get_versions(aid)
    refused = {
        "get": cb.assistants.get(aid),
        "get_graph": cb.assistants.get_graph(aid),
        "get_schemas": cb.assistants.get_schemas(aid),
        "get_subgraphs": cb.assistants.get_subgraphs(aid),
        "get_versions": cb.assistants.get_versions(aid),
        "set_latest": cb.assistants.set_latest(aid, 1),
        "update": cb.assistants.update(aid, metadata={"k": "b's"}),
        "delete": cb.assistants.delete(aid),
    }
    statuses = {name: await status_of(call) for name, call in refused.items()}
    assert statuses == dict.fromkeys(refused, 404)
    assert await ca.assistants.get(aid) == before
    assert await ca.assistants.get_versions(aid) == versions_before


async def test_each_user_has_a_store_of_its_own(
    users: tuple[str, str, dict[str, Any]], db: asyncpg.Pool
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    await ca.store.put_item(["notes"], "k", {"text": "a's"})
    await cb.store.put_item(["drafts"], "k", {"text": "b's"})
    # The namespace is the user's, as the handler rewrote it.
    assert await db.fetch(
        "SELECT prefix, value->>'text' AS text FROM store WHERE prefix LIKE $1 || '%' "
        "OR prefix LIKE $2 || '%' ORDER BY prefix",
        a,
        b,
    ) == [(f"{a}.notes", "a's"), (f"{b}.drafts", "b's")]
    assert (await ca.store.get_item(["notes"], "k"))["value"] == {"text": "a's"}

    assert await cb.store.get_item(["notes"], "k") is None
    assert await cb.store.get_item([a, "notes"], "k") is None
    assert (await cb.store.search_items(["notes"]))["items"] == []
    every = (await cb.store.search_items([], limit=100))["items"]
    assert [i["value"] for i in every] == [{"text": "b's"}]
    namespaces = (await cb.store.list_namespaces())["namespaces"]
    assert namespaces and all(a not in ns and "notes" not in ns for ns in namespaces)

    # b writing and deleting "the same" item touches b's own.
    await cb.store.put_item(["notes"], "k", {"text": "b wrote"})
    await cb.store.put_item([a, "notes"], "k", {"text": "b wrote"})
    await cb.store.delete_item(["notes"], "k")
    await cb.store.delete_item([a, "notes"], "k")
    assert (await ca.store.get_item(["notes"], "k"))["value"] == {"text": "a's"}
    assert [i["value"] for i in (await ca.store.search_items([], limit=100))["items"]] == [
        {"text": "a's"}
    ]


# -- other Auths ---------------------------------------------------------------


async def test_uncovered_resource_actions_are_named_at_start(
    database_url: str, tmp_path: Path
) -> None:
    """An Auth with a threads handler only: the server starts, applies it,
    and warns that the rest is open to every authenticated user."""
    config = auth_config(tmp_path, "threads_only.py")
    with server_process(database_url, config=config) as server:
        log = server.log()
        assert "no @auth.on handler covers" in log, log
        [line] = [x for x in log.splitlines() if "no @auth.on handler covers" in x]
        named = line.split("no @auth.on handler covers", 1)[1]
        for pair in ("assistants.create", "assistants.read", "crons.create", "crons.search"):
            assert pair in named, line
        assert "store." in named and "threads." not in named, line

        a, b = fresh("a"), fresh("b")
        ca, cb = client_of(server, a), client_of(server, b)
        try:
            tid = (await ca.threads.create())["thread_id"]
            assert (await ca.threads.get(tid))["metadata"] == {"owner": a}
            assert await status_of(cb.threads.get(tid)) == 404
            assert await cb.threads.search() == []
            # Assistants have no handler: open to every user, as warned.
            asst = await ca.assistants.create("whoami")
            assert (await cb.assistants.get(asst["assistant_id"]))["assistant_id"] == (
                asst["assistant_id"]
            )
        finally:
            await ca.aclose()
            await cb.aclose()


@pytest.fixture(scope="module")
def odd_database(admin_url: str, template_db: str) -> Iterator[str]:
    name = dbs.create_database(admin_url, template_db)
    yield dbs.with_database(admin_url, name)
    dbs.drop_database(admin_url, name)


@pytest.fixture(scope="module")
def odd_server(
    odd_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with tests/graphs/auth/odd_handlers.py, on a database of its own."""
    config = auth_config(tmp_path_factory.mktemp("odd"), "odd_handlers.py")
    with server_process(odd_database, config=config) as proc:
        yield proc


async def test_filters_with_or_and_contains_share_threads(odd_server: ServerProcess) -> None:
    a, b, c = fresh("a"), fresh("b"), fresh("c")
    ca, cb, cc = (client_of(odd_server, u) for u in (a, b, c))
    try:
        shared = (await ca.threads.create(metadata={"members": [b]}))["thread_id"]
        private = (await ca.threads.create(metadata={"members": [c, "x"]}))["thread_id"]
        assert (await cb.threads.get(shared))["metadata"] == {"members": [b], "owner": a}
        assert ids(await cb.threads.search(), "thread_id") == {shared}
        assert await cb.threads.count() == 1
        assert ids(await cc.threads.search(), "thread_id") == {private}
        assert ids(await ca.threads.search(), "thread_id") == {shared, private}
        assert await status_of(cb.threads.get(private)) == 404
        # A member may run on the thread; the run is the member's.
        assert await cb.runs.wait(shared, "whoami", input={}) == {"user": b, "permissions": []}
        assert await status_of(cc.runs.list(shared)) == 404
        assert len(await ca.runs.list(shared)) == 1
    finally:
        for client in (ca, cb, cc):
            await client.aclose()


@pytest.mark.parametrize(
    ("user", "status"),
    [("invalid", 403), ("nested", 403), ("weird", 403), ("teapot", 418)],
)
async def test_what_a_handler_answers_that_cannot_be_served_is_refused(
    odd_server: ServerProcess, user: str, status: int
) -> None:
    """A filter pgqueue cannot read, or no filter at all, is refused (403),
    never served unfiltered; an HTTPException answers with its status."""
    client = client_of(odd_server, user)
    owner = client_of(odd_server, fresh("a"))
    try:
        theirs = await owner.threads.create()
        before = await owner.threads.get(theirs["thread_id"])
        new_thread = str(uuid.uuid4())
        calls = {
            "create": client.threads.create(thread_id=new_thread),
            "search": client.threads.search(),
            "count": client.threads.count(),
            "get": client.threads.get(theirs["thread_id"]),
            "update": client.threads.update(theirs["thread_id"], metadata={"by": user}),
            "delete": client.threads.delete(theirs["thread_id"]),
            "run": client.runs.create(None, "whoami", input={}),
            "run on a thread": client.runs.create(theirs["thread_id"], "whoami", input={}),
        }
        statuses = {name: await status_of(call) for name, call in calls.items()}
        assert statuses == dict.fromkeys(calls, status)
        if user == "teapot":
            try:
                await client.threads.search()
            except httpx.HTTPStatusError as exc:
                assert exc.response.json()["detail"] == "no threads for teapots"
        assert await status_of(owner.threads.get(new_thread)) == 404
        assert await owner.threads.get(theirs["thread_id"]) == before
    finally:
        await client.aclose()
        await owner.aclose()


async def test_a_store_handler_that_answers_a_filter_is_refused(
    odd_server: ServerProcess, odd_database: str
) -> None:
    """Store items have no metadata to filter on: a filter from a store
    handler is refused (403), never ignored."""
    client = client_of(odd_server, fresh("someone"))
    key = f"k{uuid.uuid4().hex}"
    try:
        calls = {
            "put_item": client.store.put_item(["notes"], key, {"v": 1}),
            "get_item": client.store.get_item(["notes"], key),
            "search_items": client.store.search_items(["notes"]),
            "list_namespaces": client.store.list_namespaces(),
            "delete_item": client.store.delete_item(["notes"], key),
        }
        statuses = {name: await status_of(call) for name, call in calls.items()}
        assert statuses == dict.fromkeys(calls, 403)
        # The server is up and answers the rest.
        assert (await client.threads.create())["thread_id"]
    finally:
        await client.aclose()
    conn = await asyncpg.connect(odd_database)
    try:
        assert await conn.fetchval("SELECT count(*) FROM store WHERE key = $1", key) == 0
    finally:
        await conn.close()

"""Threads routes, driven by the official langgraph-sdk client (and raw
httpx for errors and runs). State is written either by update_state (no
worker needed) or by real runs of tests/graphs on the server's in-process
worker. One server per module: searches are scoped by a unique tag."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.support.server import ServerProcess
from tests.support.waiting import eventually

NODE_RUNS = (
    "CREATE TABLE IF NOT EXISTS node_runs "
    "(run_id text, node text, attempt int, at timestamptz DEFAULT clock_timestamp())"
)


def tag() -> dict[str, str]:
    return {"test": uuid.uuid4().hex}


@pytest.fixture
async def http(server: ServerProcess, db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    await db.execute(NODE_RUNS)  # the test graphs record their nodes there
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def checkpoints(db: asyncpg.Pool, thread_id: str) -> int:
    return int(
        await db.fetchval("SELECT count(*) FROM checkpoints WHERE thread_id = $1", thread_id)
    )


async def stepped(client: LangGraphClient, *logs: str, **metadata: Any) -> str:
    """A three_steps thread whose state was written by updates as node one."""
    thread = await client.threads.create(metadata=metadata, graph_id="three_steps")
    for log in logs:
        await client.threads.update_state(thread["thread_id"], {"log": [log]}, as_node="one")
    return str(thread["thread_id"])


async def test_create_get_update_delete(client: LangGraphClient, db: asyncpg.Pool) -> None:
    created = await client.threads.create(metadata={"owner": "ann", "n": 1})
    tid = created["thread_id"]
    assert created["metadata"] == {"owner": "ann", "n": 1}
    assert created["status"] == "idle"
    assert created["values"] is None
    assert created["interrupts"] == {}
    assert set(created) >= {"created_at", "updated_at", "state_updated_at", "config", "error"}
    assert await client.threads.get(tid) == created

    updated = await client.threads.update(tid, metadata={"n": 2, "tag": "x"})
    assert updated["metadata"] == {"owner": "ann", "n": 2, "tag": "x"}
    assert updated["updated_at"] > created["updated_at"]
    assert await client.threads.update(tid, metadata={"m": 1}, return_minimal=True) is None
    assert (await client.threads.get(tid))["metadata"]["m"] == 1

    await client.threads.delete(tid)
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)
    assert await db.fetchval("SELECT count(*) FROM threads WHERE thread_id = $1", tid) == 0


async def test_if_exists_and_graph_id(client: LangGraphClient) -> None:
    tid = str(uuid.uuid4())
    first = await client.threads.create(thread_id=tid, graph_id="asks", metadata={"a": 1})
    assert first["thread_id"] == tid
    assert first["metadata"] == {"a": 1, "graph_id": "asks"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid)
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=tid, if_exists="raise")
    assert await client.threads.create(thread_id=tid, if_exists="do_nothing") == first


async def test_errors_name_the_field(http: httpx.AsyncClient, client: LangGraphClient) -> None:
    bad = await http.get("/threads/not-a-uuid")
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("thread_id:")
    unknown = str(uuid.uuid4())
    for method, path, body in [
        ("GET", f"/threads/{unknown}", None),
        ("PATCH", f"/threads/{unknown}", {"metadata": {}}),
        ("DELETE", f"/threads/{unknown}", None),
        ("POST", f"/threads/{unknown}/copy", None),
        ("GET", f"/threads/{unknown}/state", None),
        ("POST", f"/threads/{unknown}/state", {"values": {}}),
        ("POST", f"/threads/{unknown}/history", {}),
        ("GET", f"/threads/{unknown}/history", None),
    ]:
        r = await http.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert unknown in r.json()["detail"]
    checks = [
        ("POST", "/threads", {"thread_id": "nope"}, "thread_id:"),
        ("POST", "/threads", {"if_exists": "sometimes"}, "if_exists:"),
        ("POST", "/threads/search", {"status": "sleeping"}, "status:"),
        ("POST", "/threads/search", {"limit": 0}, "limit:"),
        ("POST", "/threads/search", {"extract": {"x": "values..a"}}, "extract:"),
        ("POST", "/threads/prune", {"thread_ids": ["x"]}, "thread_ids.0:"),
    ]
    for method, path, body, field in checks:
        r = await http.request(method, path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert r.json()["detail"].startswith(field), r.json()
    tid = (await client.threads.create())["thread_id"]
    no_metadata = await http.patch(f"/threads/{tid}", json={})
    assert no_metadata.status_code == 422
    assert no_metadata.json()["detail"].startswith("metadata:")
    bad_checkpoint = await http.get(f"/threads/{tid}/state/not-a-checkpoint")
    assert bad_checkpoint.status_code == 422
    assert bad_checkpoint.json()["detail"].startswith("checkpoint_id:")


async def test_state_of_a_new_thread_is_empty(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    state = await client.threads.get_state(tid)
    assert state["values"] == {}
    assert state["next"] == []
    assert state["tasks"] == []
    # No checkpoint yet: null, as langgraph dev answers.
    assert state["checkpoint"] is None
    assert state["checkpoint_id"] is None
    assert await client.threads.get_history(tid) == []
    # No graph to update it with: the thread never ran and names none.
    with pytest.raises(ConflictError) as raised:
        await client.threads.update_state(tid, {"log": ["x"]})
    assert "graph" in raised.value.body["detail"]


async def test_update_state_then_read_it(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread = await client.threads.create(graph_id="three_steps")
    tid = thread["thread_id"]
    first = await client.threads.update_state(tid, {"log": ["a"]}, as_node="one")
    assert first["checkpoint"]["thread_id"] == tid
    assert first["checkpoint"]["checkpoint_ns"] == ""
    # As the platform answers: also as a config, and the id (the JS SDK reads these).
    assert first["configurable"] == first["checkpoint"]
    assert first["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    state = await client.threads.get_state(tid)
    assert state["values"] == {"log": ["a"]}
    assert state["next"] == ["two"]
    assert [t["name"] for t in state["tasks"]] == ["two"]
    assert state["checkpoint"]["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    assert state["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    assert state["metadata"]["source"] == "update"
    assert state["created_at"]
    assert state["interrupts"] == []

    # The thread's record follows: its values, and interrupted while a node is next.
    after = await client.threads.get(tid)
    assert after["values"] == {"log": ["a"]}
    assert after["status"] == "interrupted"
    assert after["state_updated_at"] is not None

    second = await client.threads.update_state(tid, {"log": ["b"]}, as_node="three")
    state = await client.threads.get_state(tid)
    assert state["values"] == {"log": ["a", "b"]}
    assert state["next"] == []
    assert state["parent_checkpoint"]["checkpoint_id"] == first["checkpoint"]["checkpoint_id"]
    assert (await client.threads.get(tid))["status"] == "idle"
    row = await db.fetchrow("SELECT status, state_values FROM threads WHERE thread_id = $1", tid)
    assert row["status"] == "idle" and row["state_values"] == '{"log": ["a", "b"]}'

    # Earlier states: by checkpoint id (path), by checkpoint (body).
    at_first = await client.threads.get_state(
        tid, checkpoint_id=first["checkpoint"]["checkpoint_id"]
    )
    assert at_first["values"] == {"log": ["a"]}
    by_body = await client.threads.get_state(tid, checkpoint=first["checkpoint"])
    assert by_body["values"] == {"log": ["a"]}
    with pytest.raises(NotFoundError):
        await client.threads.get_state(tid, checkpoint_id=str(uuid.uuid4()))
    only_log = await client.threads.get_state(tid, select=["values.log", "next"])
    assert only_log == {"values": {"log": ["a", "b"]}, "next": []}

    # Fork: an update from the first checkpoint leaves the second on its branch.
    fork = await client.threads.update_state(
        tid, {"log": ["c"]}, as_node="one", checkpoint_id=first["checkpoint"]["checkpoint_id"]
    )
    state = await client.threads.get_state(tid)
    assert state["values"] == {"log": ["a", "c"]}
    assert state["checkpoint_id"] == fork["checkpoint"]["checkpoint_id"]
    assert state["checkpoint_id"] != second["checkpoint"]["checkpoint_id"]


async def test_graph_named_by_metadata_assistant(client: LangGraphClient) -> None:
    assistant = await client.assistants.create("three_steps")
    tid = (await client.threads.create(metadata={"assistant_id": assistant["assistant_id"]}))[
        "thread_id"
    ]
    await client.threads.update_state(tid, {"log": ["a"]}, as_node="one")
    assert (await client.threads.get_state(tid))["next"] == ["two"]
    # Free-form metadata that names no assistant: no graph, no error.
    odd = (await client.threads.create(metadata={"assistant_id": "not a uuid"}))["thread_id"]
    assert (await client.threads.get_state(odd))["values"] == {}


async def test_update_state_refusals(client: LangGraphClient) -> None:
    tid = await stepped(client, "a")
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.threads.update_state(tid, {"log": ["x"]}, as_node="no_such_node")
    assert raised.value.body["detail"].startswith("as_node:")
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.threads.update_state(tid, {"log": 5}, as_node="one")
    assert raised.value.body["detail"].startswith("values:")
    with pytest.raises(NotFoundError):
        await client.threads.update_state(
            tid, {"log": ["x"]}, as_node="one", checkpoint_id=str(uuid.uuid4())
        )
    assert (await client.threads.get_state(tid))["values"] == {"log": ["a"]}  # unchanged


async def test_history(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    tid = await stepped(client, "a", "b", "c")
    history = await client.threads.get_history(tid)
    assert [s["values"]["log"] for s in history] == [["a", "b", "c"], ["a", "b"], ["a"]]
    assert [s["values"]["log"] for s in await client.threads.get_history(tid, limit=2)] == [
        ["a", "b", "c"],
        ["a", "b"],
    ]
    before = await client.threads.get_history(tid, before=history[0]["checkpoint"])
    assert [s["values"]["log"] for s in before] == [["a", "b"], ["a"]]
    before_id = await client.threads.get_history(tid, before=history[1]["checkpoint_id"])
    assert [s["values"]["log"] for s in before_id] == [["a"]]
    # The JS SDK's shape: a config.
    as_config = {"configurable": {"checkpoint_id": history[1]["checkpoint_id"]}}
    before_config = await http.post(f"/threads/{tid}/history", json={"before": as_config})
    assert [s["values"]["log"] for s in before_config.json()] == [["a"]]
    assert len(await client.threads.get_history(tid, metadata={"source": "update"})) == 3
    assert await client.threads.get_history(tid, metadata={"source": "loop"}) == []
    assert [s["values"]["log"] for s in (await http.get(f"/threads/{tid}/history")).json()] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
    ]


async def test_copy(client: LangGraphClient, db: asyncpg.Pool) -> None:
    tid = await stepped(client, "a", "b", owner="ann")
    copied = await client.threads.copy(tid)
    assert copied["thread_id"] != tid
    assert copied["metadata"] == {"owner": "ann", "graph_id": "three_steps"}
    assert copied["values"] == {"log": ["a", "b"]}
    cid = copied["thread_id"]
    assert await checkpoints(db, cid) == await checkpoints(db, tid) == 2
    original = await client.threads.get_state(tid)
    copy_state = await client.threads.get_state(cid)
    assert copy_state["values"] == original["values"]
    assert copy_state["checkpoint_id"] == original["checkpoint_id"]
    assert copy_state["checkpoint"]["thread_id"] == cid
    # The two go their own ways.
    await client.threads.update_state(cid, {"log": ["c"]}, as_node="one")
    assert (await client.threads.get_state(cid))["values"] == {"log": ["a", "b", "c"]}
    assert (await client.threads.get_state(tid))["values"] == {"log": ["a", "b"]}


async def test_delete_removes_checkpoints(client: LangGraphClient, db: asyncpg.Pool) -> None:
    tid = await stepped(client, "a", "b")
    assert await checkpoints(db, tid) == 2
    await client.threads.delete(tid)
    assert await checkpoints(db, tid) == 0
    for table in ("checkpoint_blobs", "checkpoint_writes"):
        query = f"SELECT count(*) FROM {table} WHERE thread_id = $1"
        assert await db.fetchval(query, tid) == 0


async def test_search_and_count(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    mine = tag()
    plain = await client.threads.create(metadata={**mine, "kind": "plain"})
    stepped_id = await stepped(client, "a", **mine, kind="stepped")
    done_id = await stepped(client, "z", **mine, kind="done")
    await client.threads.update_state(done_id, {"log": ["end"]}, as_node="three")

    found = await client.threads.search(metadata=mine)
    assert [t["thread_id"] for t in found] == [done_id, stepped_id, plain["thread_id"]]
    oldest_first = await client.threads.search(
        metadata=mine, sort_by="created_at", sort_order="asc"
    )
    assert [t["thread_id"] for t in oldest_first] == [plain["thread_id"], stepped_id, done_id]
    interrupted = await client.threads.search(metadata=mine, status="interrupted")
    assert [t["thread_id"] for t in interrupted] == [stepped_id]
    by_values = await client.threads.search(metadata=mine, values={"log": ["z"]})
    assert [t["thread_id"] for t in by_values] == [done_id]
    by_ids = await client.threads.search(ids=[plain["thread_id"], done_id])
    assert {t["thread_id"] for t in by_ids} == {plain["thread_id"], done_id}
    paged = await client.threads.search(metadata=mine, limit=1, offset=1)
    assert [t["thread_id"] for t in paged] == [stepped_id]
    assert await client.threads.count(metadata=mine) == 3
    assert await client.threads.count(metadata=mine, status="idle") == 2
    assert await client.threads.count(metadata=mine, values={"log": ["a"]}) == 1

    selected = await client.threads.search(metadata=mine, select=["thread_id", "status"])
    assert all(set(t) == {"thread_id", "status"} for t in selected)
    extracted = await client.threads.search(
        metadata=mine,
        status="idle",
        extract={"last": "values.log[-1]", "kind": "metadata.kind", "none": "values.nope[3]"},
    )
    assert [t["extracted"] for t in extracted] == [
        {"last": "end", "kind": "done", "none": None},
        {"last": None, "kind": "plain", "none": None},
    ]

    r = await http.post("/threads/search", json={"metadata": mine, "limit": 2})
    assert r.headers["X-Pagination-Total"] == "3"
    assert r.headers["X-Pagination-Next"] == "2"


async def test_create_with_supersteps(client: LangGraphClient) -> None:
    thread = await client.threads.create(
        graph_id="three_steps",
        supersteps=[
            {"updates": [{"values": {"log": ["a"]}, "as_node": "one"}]},
            {"updates": [{"values": {"log": ["b"]}, "as_node": "two"}]},
        ],
    )
    assert thread["values"] == {"log": ["a", "b"]}
    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["three"]
    tid = str(uuid.uuid4())
    with pytest.raises(UnprocessableEntityError):
        await client.threads.create(
            thread_id=tid,
            graph_id="three_steps",
            supersteps=[{"updates": [{"values": {}, "as_node": "nope"}]}],
        )
    with pytest.raises(NotFoundError):  # a refused update leaves no thread behind
        await client.threads.get(tid)


async def test_prune(client: LangGraphClient, db: asyncpg.Pool) -> None:
    keep = await stepped(client, "a", "b", "c")
    gone = await stepped(client, "a")
    assert await client.threads.prune([keep], strategy="keep_latest") == {"pruned_count": 1}
    assert await checkpoints(db, keep) == 1
    assert (await client.threads.get_state(keep))["values"] == {"log": ["a", "b", "c"]}
    assert await client.threads.prune([gone, str(uuid.uuid4())]) == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await client.threads.get(gone)
    assert await checkpoints(db, gone) == 0


# -- with runs (the server's in-process worker) ----------------------------------


async def test_state_after_runs(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    r = await http.post(
        f"/threads/{tid}/runs/wait", json={"assistant_id": "three_steps", "input": {"log": []}}
    )
    assert r.status_code == 200, r.text
    # The thread names no graph: its run does.
    state = await client.threads.get_state(tid)
    assert state["values"]["log"] == ["one", "two", "three"]
    assert state["next"] == []
    assert state["metadata"]["source"] == "loop"
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle"
    assert thread["values"]["log"] == ["one", "two", "three"]
    history = await client.threads.get_history(tid, limit=100)
    assert history[0]["checkpoint_id"] == state["checkpoint_id"]
    assert history[-1]["metadata"]["source"] == "input"

    asks = (await client.threads.create())["thread_id"]
    r = await http.post(f"/threads/{asks}/runs/wait", json={"assistant_id": "asks", "input": {}})
    assert r.status_code == 200, r.text
    state = await client.threads.get_state(asks)
    assert state["next"] == ["ask"]
    assert [i["value"] for i in state["interrupts"]] == [{"question": "what is the answer?"}]
    assert state["tasks"][0]["interrupts"] == state["interrupts"]
    thread = await client.threads.get(asks)
    assert thread["status"] == "interrupted"
    assert list(thread["interrupts"].values()) == [state["interrupts"]]


async def test_busy_thread(
    client: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    """A running run: state updates are refused; deleting the thread deletes
    the run too (its worker is told to stop and has lost its lease), with
    every checkpoint."""
    tid = (await client.threads.create())["thread_id"]
    r = await http.post(
        f"/threads/{tid}/runs",
        json={"assistant_id": "three_steps", "input": {"log": [], "sleep_in_two": 60}},
    )
    assert r.status_code == 200, r.text
    run_id = r.json()["run_id"]

    async def in_two() -> bool:
        query = "SELECT count(*) FROM node_runs WHERE run_id = $1 AND node = 'two'"
        return bool(await db.fetchval(query, run_id))

    await eventually(in_two, what="the run sleeping in node two")
    assert (await client.threads.get(tid))["status"] == "busy"
    assert [t["thread_id"] for t in await client.threads.search(ids=[tid], status="busy")] == [tid]
    with pytest.raises(ConflictError):
        await client.threads.update_state(tid, {"log": ["x"]}, as_node="one")
    # Durability async: node one's checkpoints commit within the group-commit
    # delay (100 ms), not necessarily before node two starts.
    await eventually(lambda: checkpoints(db, tid), what="the run's first checkpoints to commit")

    await client.threads.delete(tid)
    assert await db.fetchval("SELECT count(*) FROM runs WHERE run_id = $1", run_id) == 0
    assert await checkpoints(db, tid) == 0
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)


def test_openapi_describes_threads(server: ServerProcess) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for path, methods in {
        "/threads": {"post"},
        "/threads/search": {"post"},
        "/threads/count": {"post"},
        "/threads/prune": {"post"},
        "/threads/{thread_id}": {"get", "patch", "delete"},
        "/threads/{thread_id}/copy": {"post"},
        "/threads/{thread_id}/state": {"get", "post"},
        "/threads/{thread_id}/state/{checkpoint_id}": {"get"},
        "/threads/{thread_id}/state/checkpoint": {"post"},
        "/threads/{thread_id}/history": {"get", "post"},
    }.items():
        assert methods <= set(paths[path]), path

"""Thread TTLs through the SDK, against a real server process configured by
langgraph.json's checkpointer.ttl: a thread without its own TTL gets the
default, GET ?include=ttl shows it, and once it runs out the pruner deletes
the thread with everything on it (delete) or keeps only its latest
checkpoint (keep_latest). Time is faked by back-dating expires_at, never
slept through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

GRAPHS = REPO / "tests" / "graphs" / "graphs.py"
YEARLY = "0 0 1 1 *"
# Every row that hangs off a thread, by table: what "delete" must leave none of.
ON_A_THREAD = {
    "threads": "SELECT count(*) FROM threads WHERE thread_id = $1::uuid",
    "runs": "SELECT count(*) FROM runs WHERE thread_id = $1::uuid",
    "run_events": "SELECT count(*) FROM run_events e JOIN runs r USING (run_id) "
    "WHERE r.thread_id = $1::uuid",
    "crons": "SELECT count(*) FROM crons WHERE thread_id = $1::uuid",
    "checkpoints": "SELECT count(*) FROM checkpoints WHERE thread_id = $1",
    "checkpoint_blobs": "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = $1",
    "checkpoint_writes": "SELECT count(*) FROM checkpoint_writes WHERE thread_id = $1",
}


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "langgraph.json"
    ttl = {"strategy": "delete", "default_ttl": 10, "sweep_interval_minutes": 60}
    config.write_text(
        json.dumps({"graphs": {"echo": f"{GRAPHS}:echo_graph"}, "checkpointer": {"ttl": ttl}})
    )
    # A pruner pass every 0.3 s: sooner than sweep_interval_minutes, as the
    # flag asks.
    with server_process(database_url, "--prune-interval", "0.3", config=config) as proc:
        yield proc


async def _counts(pool: asyncpg.Pool, thread_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(sql, thread_id) for table, sql in ON_A_THREAD.items()}


async def _expire(pool: asyncpg.Pool, thread_id: str) -> None:
    await pool.execute(
        "UPDATE threads SET expires_at = now() - interval '1 second' WHERE thread_id = $1::uuid",
        thread_id,
    )


async def _runs(client: LangGraphClient, thread_id: str, n: int) -> None:
    for _ in range(n):
        await client.runs.wait(thread_id, "echo", input={})


async def test_a_thread_gets_the_default_ttl_or_its_own_and_shows_it(
    client: LangGraphClient,
) -> None:
    default = await client.threads.create()
    shown = await client.threads.get(default["thread_id"], include=["ttl"])
    ttl: Any = shown["ttl"]  # type: ignore[typeddict-item]
    assert (ttl["strategy"], ttl["ttl_minutes"]) == ("delete", 10)
    expires = datetime.fromisoformat(ttl["expires_at"])
    assert expires == datetime.fromisoformat(shown["updated_at"]) + timedelta(minutes=10)
    assert "ttl" not in await client.threads.get(default["thread_id"])  # only on request
    # The SDK sends a bare number as {"ttl": n, "strategy": "delete"}; a
    # thread's own TTL replaces the default, fractions allowed.
    own = await client.threads.create(ttl=2.5)
    ttl = (await client.threads.get(own["thread_id"], include=["ttl"]))["ttl"]  # type: ignore[typeddict-item]
    assert (ttl["strategy"], ttl["ttl_minutes"]) == ("delete", 2.5)
    await client.threads.update(
        own["thread_id"], metadata={}, ttl={"ttl": 7, "strategy": "keep_latest"}
    )
    ttl = (await client.threads.get(own["thread_id"], include=["ttl"]))["ttl"]  # type: ignore[typeddict-item]
    assert (ttl["strategy"], ttl["ttl_minutes"]) == ("keep_latest", 7)


async def test_bad_ttls_are_refused_naming_the_field(server: ServerProcess) -> None:
    bad = [0, "soon", {"ttl": -1}, {"ttl": 5, "strategy": "archive"}, {"minutes": 5}]
    async with httpx.AsyncClient(base_url=server.url) as http:
        for ttl in bad:
            for method, path in (("POST", "/threads"), ("PATCH", f"/threads/{uuid4()}")):
                response = await http.request(method, path, json={"ttl": ttl})
                assert response.status_code == 422, (ttl, response.text)
                assert "ttl" in response.text, response.text
        assert not (await http.post("/threads/search", json={})).json()  # none half-made


async def test_an_expired_delete_thread_goes_with_everything_on_it(
    client: LangGraphClient, pool: asyncpg.Pool
) -> None:
    doomed, kept = (await client.threads.create(), await client.threads.create())
    for thread in (doomed, kept):
        await _runs(client, thread["thread_id"], 2)
        await client.crons.create_for_thread(thread["thread_id"], "echo", schedule=YEARLY)
    before = await _counts(pool, doomed["thread_id"])
    assert all(before.values()), before  # something in every table to delete
    await _expire(pool, doomed["thread_id"])

    async def gone() -> bool:
        return not any((await _counts(pool, doomed["thread_id"])).values())

    await eventually(gone, timeout=30, what="the expired thread's deletion")
    with pytest.raises(NotFoundError):
        await client.threads.get(doomed["thread_id"])
    assert await _counts(pool, kept["thread_id"]) == before  # the same rows, untouched


async def test_an_expired_keep_latest_thread_keeps_one_checkpoint_and_runs_again(
    client: LangGraphClient, pool: asyncpg.Pool
) -> None:
    thread = await client.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"})
    tid = thread["thread_id"]
    await _runs(client, tid, 2)
    assert (await _counts(pool, tid))["checkpoints"] > 1
    await _expire(pool, tid)

    async def pruned() -> bool:
        return (await _counts(pool, tid))["checkpoints"] == 1

    await eventually(pruned, timeout=30, what="the expired thread's pruning")
    assert (await client.threads.get_state(tid))["values"] == {"count": 2}
    ttl = (await client.threads.get(tid, include=["ttl"]))["ttl"]  # type: ignore[typeddict-item]
    assert ttl["expires_at"] is None  # pruned: nothing to do until the thread is used
    await _runs(client, tid, 1)
    assert (await client.threads.get_state(tid))["values"] == {"count": 3}
    ttl = (await client.threads.get(tid, include=["ttl"]))["ttl"]  # type: ignore[typeddict-item]
    assert ttl["expires_at"] is not None  # used again: its TTL runs anew

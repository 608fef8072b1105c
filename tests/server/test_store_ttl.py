"""The store's TTL through a real server process configured by
langgraph.json: each server deletes expired rows every
``sweep_interval_minutes``, and a read restarts an item's TTL
(``refresh_on_read``) unless it asks otherwise. Time is faked by
back-dating rows, never slept through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

GRAPHS = REPO / "tests" / "graphs" / "graphs.py"


def ttl_config(tmp_path: Path, **ttl: object) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"echo": f"{GRAPHS}:echo_graph"}, "store": {"ttl": ttl}}))
    return path


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    # A sweep every 0.6 s (the setting is in minutes), a 10-minute default.
    config = ttl_config(tmp_path, default_ttl=10, refresh_on_read=True, sweep_interval_minutes=0.01)
    with server_process(database_url, command="server", config=config) as proc:
        yield proc


async def minutes_left(pool: asyncpg.Pool, key: str) -> float:
    value = await pool.fetchval(
        "SELECT extract(epoch FROM expires_at - now()) / 60 FROM store WHERE key = $1", key
    )
    return float(value)


async def test_the_servers_periodic_sweep_deletes_expired_rows(
    client: LangGraphClient, pool: asyncpg.Pool
) -> None:
    await client.store.put_item(["sweep"], "expired", {"v": 1}, ttl=10)
    await client.store.put_item(["sweep"], "fresh", {"v": 2}, ttl=10)
    await client.store.put_item(["sweep"], "default", {"v": 3})  # default_ttl: 10 minutes
    assert await minutes_left(pool, "default") > 9
    await pool.execute(
        "UPDATE store SET expires_at = now() - interval '1 second' WHERE key = 'expired'"
    )

    async def swept() -> bool:
        # The row itself, not a read (reads hide expired items anyway).
        return not await pool.fetchval("SELECT count(*) FROM store WHERE key = 'expired'")

    await eventually(swept, timeout=30, what="the server's store sweep")
    keys = [r["key"] for r in await pool.fetch("SELECT key FROM store ORDER BY key")]
    assert keys == ["default", "fresh"]
    # And it keeps sweeping: a second item expiring later is deleted too.
    await pool.execute(
        "UPDATE store SET expires_at = now() - interval '1 second' WHERE key = 'fresh'"
    )

    async def swept_again() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM store WHERE key = 'fresh'")

    await eventually(swept_again, timeout=30, what="a later store sweep")
    assert [r["key"] for r in await pool.fetch("SELECT key FROM store")] == ["default"]


async def test_a_read_restarts_the_ttl_unless_asked_not_to(
    client: LangGraphClient, pool: asyncpg.Pool
) -> None:
    store = client.store
    for key in ("got", "searched", "kept"):
        await store.put_item(["refresh", key], key, {"k": key}, ttl=10)
    # Each has one minute left of its ten.
    await pool.execute("UPDATE store SET expires_at = now() + interval '1 minute'")

    assert (await store.get_item(["refresh", "got"], "got"))["value"] == {"k": "got"}
    assert 9 < await minutes_left(pool, "got") <= 10

    found = await store.search_items(["refresh", "searched"])
    assert [i["key"] for i in found["items"]] == ["searched"]
    assert 9 < await minutes_left(pool, "searched") <= 10

    assert (await store.get_item(["refresh", "kept"], "kept", refresh_ttl=False))["value"] == {
        "k": "kept"
    }
    assert await minutes_left(pool, "kept") <= 1


async def test_refresh_on_read_false_leaves_the_ttl_alone(
    database_url: str, tmp_path: Path, pool: asyncpg.Pool
) -> None:
    config = ttl_config(tmp_path, refresh_on_read=False)
    with server_process(database_url, command="server", config=config) as proc:
        client = get_client(url=proc.url, api_key=None)
        try:
            await client.store.put_item(["off"], "item", {"v": 1}, ttl=10)
            await client.store.put_item(["off"], "forever", {"v": 2})  # no default_ttl
            await pool.execute(
                "UPDATE store SET expires_at = now() + interval '1 minute' WHERE key = 'item'"
            )
            assert (await client.store.get_item(["off"], "item"))["value"] == {"v": 1}
            assert await minutes_left(pool, "item") <= 1
            # A read may still ask for a refresh.
            await client.store.get_item(["off"], "item", refresh_ttl=True)
            assert 9 < await minutes_left(pool, "item") <= 10
            assert await pool.fetchval("SELECT expires_at FROM store WHERE key = 'forever'") is None
        finally:
            await client.http.client.aclose()

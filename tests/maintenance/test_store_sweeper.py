"""The store's TTL outside HTTP: langgraph.json's settings, and the sweep
that deletes expired items (time is faked by back-dating, never slept)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg.rows import dict_row

from pgqueue.errors import ConfigError
from pgqueue.execution.graphs import StoreTTL, load_config
from pgqueue.maintenance.store_sweeper import StoreSweeper, StoreSweeperConfig


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AsyncPostgresStore]:
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        yield AsyncPostgresStore(conn, ttl=StoreTTL().store_config())  # type: ignore[arg-type]


async def test_the_sweep_deletes_expired_items_only(
    store: AsyncPostgresStore, database_url: str
) -> None:
    await store.aput(("s",), "expired", {"v": 1}, ttl=10)
    await store.aput(("s",), "fresh", {"v": 2}, ttl=10)
    await store.aput(("s",), "forever", {"v": 3})
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE store SET expires_at = now() - interval '1 second' WHERE key = 'expired'"
        )
        sweeper = StoreSweeper(store, StoreSweeperConfig(interval=60))
        assert (await sweeper.run_once()).deleted == 1
        assert (await sweeper.run_once()).deleted == 0
        cur = await conn.execute("SELECT key FROM store ORDER BY key")
        assert [r[0] for r in await cur.fetchall()] == ["forever", "fresh"]


def _config(tmp_path: Path, store: Any) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"echo": "./graphs.py:echo_graph"}, "store": store}))
    return path


def test_langgraph_json_sets_the_ttl(tmp_path: Path) -> None:
    ttl = {"default_ttl": 30, "refresh_on_read": False, "sweep_interval_minutes": 2}
    registry = load_config(_config(tmp_path, {"ttl": ttl}))
    assert registry.store_ttl == StoreTTL(
        refresh_on_read=False, default_ttl=30.0, sweep_interval_minutes=2.0
    )
    # Without one: no default TTL, reads refresh, a sweep every 5 minutes.
    assert load_config(_config(tmp_path, None)).store_ttl == StoreTTL()


@pytest.mark.parametrize(
    ("ttl", "named"),
    [
        ([], "store.ttl must be an object"),
        ({"default_ttl": -1}, "store.ttl.default_ttl"),
        ({"default_ttl": "an hour"}, "store.ttl.default_ttl"),
        ({"sweep_interval_minutes": 0}, "store.ttl.sweep_interval_minutes"),
        ({"refresh_on_read": "yes"}, "store.ttl.refresh_on_read"),
        ({"ttl_minutes": 5}, "unknown key(s) ['ttl_minutes']"),
    ],
)
def test_a_bad_ttl_setting_is_refused_by_name(tmp_path: Path, ttl: Any, named: str) -> None:
    with pytest.raises(ConfigError, match="store.ttl") as caught:
        load_config(_config(tmp_path, {"ttl": ttl}))
    assert named in str(caught.value)

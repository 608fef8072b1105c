"""langgraph-sdk's runs.stream and runs.join_stream outlive the server that
began them: the server stops (SIGTERM, a deploy) and ends the stream cleanly
mid-run, and the SDK reconnects through the Location header, with
Last-Event-ID, to whatever serves that address next, missing and repeating
nothing. A TCP forwarder stands in for the deploy's load balancer, so the
next server is up before the first one stops (no race with the SDK's
reconnect budget). The run executes in a separate worker throughout."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from langgraph_sdk import get_client

from tests.scenarios.test_shutdown import FORBIDDEN
from tests.support.procs import FAST, worker_process
from tests.support.relay import Relay
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

TICKS = 30
INPUT = {"until": TICKS, "delay": 0.1}


async def status(pool: asyncpg.Pool, run_id: str) -> str:
    return await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", uuid.UUID(run_id))  # type: ignore[no-any-return]


async def cut_after(
    parts: AsyncIterator[Any], ticks: int, a: ServerProcess, b: ServerProcess, lb: Relay
) -> list[tuple[str, Any]]:
    """Read ``parts``; after ``ticks`` updates point the balancer at B and
    SIGTERM A, then read on to the end."""
    seen: list[tuple[str, Any]] = []
    async for part in parts:
        seen.append((part.event, part.data))
        if part.event == "updates" and len([e for e, _ in seen if e == "updates"]) == ticks:
            await lb.point_at(b.port)
            a.signal(signal.SIGTERM)
    return seen


def assert_whole(seen: list[tuple[str, Any]]) -> None:
    updates = [d for e, d in seen if e == "updates"]
    assert updates == [{"tick": {"count": i}} for i in range(1, TICKS + 1)], seen
    assert not [e for e, _ in seen if e == "error"], seen


async def stopped_cleanly(a: ServerProcess) -> None:
    assert await asyncio.to_thread(a.proc.wait, 60) == 0, a.log()
    log = a.log()
    for needle in FORBIDDEN:
        assert needle not in log, f"{needle!r} in the log:\n{log}"


@pytest.fixture
def servers(database_url: str) -> Any:
    with (
        worker_process(database_url, "graphs", *FAST),
        server_process(database_url, command="server") as a,
        server_process(database_url, command="server") as b,
    ):
        yield a, b


async def test_runs_stream_reconnects_through_location_when_the_server_stops(
    servers: tuple[ServerProcess, ServerProcess], pool: asyncpg.Pool
) -> None:
    a, b = servers
    async with Relay() as lb:
        await lb.point_at(a.port)
        client = get_client(url=lb.url, api_key=None)
        thread_id = (await client.threads.create())["thread_id"]
        parts = client.runs.stream(
            thread_id, "ticks", input=INPUT, stream_mode="updates", stream_resumable=True
        )
        seen = await cut_after(parts, 5, a, b, lb)
        await client.http.client.aclose()
    await stopped_cleanly(a)
    assert_whole(seen)
    assert seen[0][0] == "metadata" and [e for e, _ in seen].count("metadata") == 1
    run_id = seen[0][1]["run_id"]
    assert await status(pool, run_id) == "success"
    assert lb.connections[b.port] >= 1  # the rest came through B
    state = await get_client(url=b.url, api_key=None).threads.get_state(thread_id)
    assert state["values"]["count"] == TICKS


async def test_join_stream_reconnects_through_location_when_the_server_stops(
    servers: tuple[ServerProcess, ServerProcess], pool: asyncpg.Pool
) -> None:
    a, b = servers
    async with Relay() as lb:
        await lb.point_at(a.port)
        client = get_client(url=lb.url, api_key=None)
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(
            thread_id, "ticks", input=INPUT, stream_mode="updates", stream_resumable=True
        )
        await eventually(lambda: status(pool, run["run_id"]), timeout=30, what="the run to exist")
        parts = client.runs.join_stream(
            thread_id, run["run_id"], stream_mode="updates", last_event_id="0"
        )
        seen = await cut_after(parts, 5, a, b, lb)
        await client.http.client.aclose()
    await stopped_cleanly(a)
    assert_whole(seen)
    assert await status(pool, run["run_id"]) == "success"
    assert lb.connections[b.port] >= 1

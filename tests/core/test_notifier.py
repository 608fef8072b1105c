"""One LISTEN connection per process: fan-out, and recovery after the
backend is terminated under it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from pgqueue.core import queue
from pgqueue.core.notifier import RECONNECTED, Notifier, NotifierConfig
from pgqueue.core.queue import ClaimedRun, NewRun
from pgqueue.types import WAKE_CHANNEL
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.support.waiting import eventually


async def _noop(run: ClaimedRun) -> None:
    return None


async def test_one_connection_fans_out_to_every_subscriber(
    pool: asyncpg.Pool, database_url: str
) -> None:
    seen: list[list[str]] = [[], [], []]
    # No health probe during the test: its SELECT would replace the LISTEN
    # as the connection's last query in pg_stat_activity, counted below.
    async with Notifier(database_url, NotifierConfig(health_check_interval=3600)) as notifier:
        for i in range(3):
            notifier.subscribe(WAKE_CHANNEL, seen[i].append)

        # A first subscription's LISTEN runs later; once it is in place,
        # every subscriber of the channel is told to catch up.
        async def listening() -> bool:
            return all(s == [RECONNECTED] for s in seen)

        await eventually(listening)
        await queue.submit(pool, [NewRun()])

        async def all_saw() -> bool:
            return all(s == [RECONNECTED, ""] for s in seen)

        await eventually(all_saw)
        listeners = await pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
        assert [r["pid"] for r in listeners] == [notifier.backend_pid]


async def test_listener_recovers_after_pg_terminate_backend(
    pool: asyncpg.Pool, database_url: str
) -> None:
    notifier = Notifier(database_url, NotifierConfig(reconnect_delay_initial=0.05))
    await notifier.start()
    events: list[str] = []
    notifier.subscribe(WAKE_CHANNEL, events.append)
    worker = Worker(database_url, _noop, WorkerConfig(poll_interval=60), notifier=notifier)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.started.wait(), 10)
        old_pid = notifier.backend_pid
        # Submitted without a wake-up: only a catch-up claim can find it.
        [missed] = await queue.submit(pool, [NewRun()], wake=False)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", old_pid)

        async def reconnected() -> bool:
            return notifier.reconnects == 1 and notifier.connected.is_set()

        await eventually(reconnected, timeout=15)
        assert notifier.backend_pid != old_pid
        assert RECONNECTED in events

        async def done(run_id: Any) -> bool:
            return (
                await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id)
                == "success"
            )

        await eventually(lambda: done(missed.run_id), timeout=15)
        # And ordinary wake-ups flow on the new connection.
        [woken] = await queue.submit(pool, [NewRun()])
        await eventually(lambda: done(woken.run_id), timeout=15)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
        await notifier.stop()


async def test_subscribing_to_several_channels_at_once_listens_to_all(
    pool: asyncpg.Pool, database_url: str
) -> None:
    channels = ("pgqueue_runs", "pgqueue_cancel", "third_channel")
    got: set[str] = set()
    async with Notifier(database_url) as notifier:
        for channel in channels:  # back to back: their LISTENs overlap
            notifier.subscribe(channel, lambda _p, c=channel: got.add(c))

        async def all_heard() -> bool:
            # LISTENs finish asynchronously: keep poking the silent ones.
            for channel in set(channels) - got:
                await pool.execute("SELECT pg_notify($1, 'x')", channel)
            return got == set(channels)

        await eventually(all_heard, timeout=10, interval=0.1)

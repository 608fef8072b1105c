"""The heartbeat alone: its lease table, one beat (``run_once``) against the
real database, and the liveness check when no beat can land."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import ClaimedRun, NewRun
from pgqueue.db.ids import uuid7
from pgqueue.types import Lease
from pgqueue.worker.heartbeat import Heartbeat, HeartbeatConfig, LeaseTable
from tests.support.waiting import eventually

WORKER = "heartbeat-test-worker"


def test_lease_table_holds_each_lease_once_and_hands_out_copies() -> None:
    run_id = uuid7()
    first, second = Lease(run_id, 1, WORKER), Lease(run_id, 2, WORKER)
    table = LeaseTable()
    table.add(first)
    table.add(first)
    # Two attempts of one run are two leases: a stale attempt may still be
    # unwinding while this worker holds the newer one.
    table.add(second)
    assert len(table) == 2
    snapshot = table.snapshot()
    assert sorted(snapshot) == [first, second]
    snapshot.clear()
    assert len(table) == 2
    table.discard(first)
    table.discard(first)  # already gone: nothing happens
    assert table.snapshot() == [second]


def test_lease_table_is_shared_safely_between_threads() -> None:
    table = LeaseTable()
    leases = [Lease(uuid7(), 1, WORKER) for _ in range(2000)]

    def churn(part: list[Lease]) -> None:
        for lease in part:
            table.add(lease)
            table.snapshot()
        for lease in part[::2]:
            table.discard(lease)

    threads = [threading.Thread(target=churn, args=(leases[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(table.snapshot()) == sorted(
        lease for i in range(4) for lease in leases[i::4][1::2]
    )


async def _claim(pool: asyncpg.Pool, n: int) -> list[ClaimedRun]:
    await queue.submit(pool, [NewRun() for _ in range(n)])
    claimed = await queue.claim(pool, WORKER, n)
    assert len(claimed) == n
    return claimed


@pytest.fixture
async def beat(database_url: str) -> AsyncIterator[tuple[Heartbeat, LeaseTable, list[set[Lease]]]]:
    """A heartbeat that the test drives itself (``run_once``), and what its
    ``on_lost`` was told."""
    table = LeaseTable()
    reported: list[set[Lease]] = []
    heartbeat = Heartbeat(database_url, WORKER, table, concurrency=4, on_lost=reported.append)
    yield heartbeat, table, reported
    await heartbeat.close()


async def test_a_beat_renews_every_held_lease_and_the_workers_row(
    pool: asyncpg.Pool, beat: tuple[Heartbeat, LeaseTable, list[set[Lease]]]
) -> None:
    heartbeat, table, reported = beat
    runs = await _claim(pool, 3)
    for run in runs:
        table.add(run.lease)
    await pool.execute("UPDATE runs SET heartbeat_at = '2000-01-01'")
    before = await pool.fetchval("SELECT clock_timestamp()")

    result = await heartbeat.run_once()

    assert result.renewed == {run.run_id for run in runs}
    assert result.lost == set()
    assert reported == []
    assert heartbeat.beats == 1
    stale = await pool.fetchval("SELECT count(*) FROM runs WHERE heartbeat_at < $1", before)
    assert stale == 0
    worker = await pool.fetchrow("SELECT * FROM workers WHERE worker_id = $1", WORKER)
    assert worker is not None
    assert (worker["host"], worker["pid"], worker["concurrency"]) == (
        socket.gethostname(),
        os.getpid(),
        4,
    )
    assert worker["heartbeat_at"] >= before


async def test_a_beat_reports_the_leases_no_longer_held(
    pool: asyncpg.Pool, beat: tuple[Heartbeat, LeaseTable, list[set[Lease]]]
) -> None:
    heartbeat, table, reported = beat
    kept, retried, ended, taken = await _claim(pool, 4)
    for run in (kept, retried, ended, taken):
        table.add(run.lease)
    # Each way a lease goes: a newer attempt (swept and claimed again), a
    # final status (a cancel), another worker.
    await pool.execute("UPDATE runs SET attempt = attempt + 1 WHERE run_id = $1", retried.run_id)
    await pool.execute(
        "UPDATE runs SET status = 'interrupted', ended_at = now() WHERE run_id = $1", ended.run_id
    )
    await pool.execute("UPDATE runs SET worker_id = 'someone-else' WHERE run_id = $1", taken.run_id)

    result = await heartbeat.run_once()

    assert result.renewed == {kept.run_id}
    assert result.lost == {retried.lease, ended.lease, taken.lease}
    assert reported == [result.lost]


async def test_of_two_attempts_of_one_run_only_the_stale_one_is_lost(
    pool: asyncpg.Pool, beat: tuple[Heartbeat, LeaseTable, list[set[Lease]]]
) -> None:
    heartbeat, table, reported = beat
    [run] = await _claim(pool, 1)
    await pool.execute("UPDATE runs SET attempt = attempt + 1 WHERE run_id = $1", run.run_id)
    current = Lease(run.run_id, run.attempt + 1, WORKER)
    table.add(run.lease)  # the stale attempt, still unwinding
    table.add(current)

    result = await heartbeat.run_once()

    assert result.renewed == {run.run_id}
    assert result.lost == {run.lease}
    assert reported == [{run.lease}]


async def test_a_beat_with_no_leases_still_says_the_worker_is_alive(
    pool: asyncpg.Pool, beat: tuple[Heartbeat, LeaseTable, list[set[Lease]]]
) -> None:
    heartbeat, _, reported = beat
    result = await heartbeat.run_once()
    assert (result.renewed, result.lost, reported) == (set(), set(), [])
    assert await pool.fetchval("SELECT count(*) FROM workers WHERE worker_id = $1", WORKER) == 1


async def test_silence_ends_when_a_beat_lands(
    beat: tuple[Heartbeat, LeaseTable, list[set[Lease]]],
) -> None:
    heartbeat, _, _ = beat
    assert heartbeat.last_beat_monotonic is None
    called = time.monotonic()
    await heartbeat.run_once()
    assert heartbeat.last_beat_monotonic is not None
    assert called <= heartbeat.last_beat_monotonic
    # Counted from the beat now, not from when the heartbeat was made.
    assert heartbeat.silent_for() <= time.monotonic() - called


async def _is_set(event: threading.Event) -> bool:
    return event.is_set()


def _closed_port_dsn() -> str:
    """A database address where nothing listens: every connect is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def test_a_beat_that_cannot_reach_the_database_raises() -> None:
    # Without a lease window the liveness check never gives up.
    heartbeat = Heartbeat(_closed_port_dsn(), WORKER, LeaseTable(), concurrency=1)
    with pytest.raises(OSError):
        await heartbeat.run_once()
    assert heartbeat.beats == 0
    assert heartbeat.check_alive()
    assert not heartbeat.dead


async def test_no_beat_for_longer_than_the_lease_declares_the_worker_dead_once() -> None:
    deaths: list[float] = []
    died = threading.Event()

    def on_dead(silent: float) -> None:
        deaths.append(silent)
        died.set()

    window = 0.3
    config = HeartbeatConfig(interval=0.05, lease_timeout=window, reconnect_delay_max=0.05)
    heartbeat = Heartbeat(
        _closed_port_dsn(), WORKER, LeaseTable(), concurrency=1, on_dead=on_dead, config=config
    )
    heartbeat.start()
    try:
        await eventually(lambda: _is_set(died), what="on_dead")
        assert heartbeat.dead
        assert heartbeat.beats == 0
        # Declared only once the silence outlasted the lease window.
        assert deaths[0] > window
        assert heartbeat.silent_for() > window
        # Later checks (the thread goes on trying) do not call on_dead again.
        assert not heartbeat.check_alive()
    finally:
        await asyncio.to_thread(heartbeat.stop)
    assert len(deaths) == 1

"""pgqueue_sweep() and the in-process Sweeper; time is faked by back-dating rows."""

from __future__ import annotations

import asyncio

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.maintenance.sweeper import Sweeper, SweeperConfig
from pgqueue.types import WAKE_CHANNEL

SWEEP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('pgqueue.sweep', 0))"


async def _age_heartbeats(pool: asyncpg.Pool, seconds: int) -> None:
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - make_interval(secs => $1) WHERE status = 'running'",
        seconds,
    )


async def _silent_run(pool: asyncpg.Pool, seconds: int = 60, *, wake: bool = True) -> None:
    """One run claimed by worker "w", whose last heartbeat was ``seconds`` ago."""
    await queue.submit(pool, [NewRun()], wake=wake)
    await queue.claim(pool, "w", 1)
    await _age_heartbeats(pool, seconds)


async def test_stale_running_runs_go_back_to_pending_and_fresh_ones_stay(
    pool: asyncpg.Pool,
) -> None:
    stale, fresh = await queue.submit(pool, [NewRun(), NewRun()])
    await queue.claim(pool, "w", 2)
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - interval '31 seconds' WHERE run_id = $1",
        stale.run_id,
    )
    sweeper = Sweeper(pool, SweeperConfig(stale_after=30))
    assert (await sweeper.run_once()).requeued == 1
    rows = {
        r["run_id"]: r
        for r in await pool.fetch("SELECT run_id, status, attempt, worker_id FROM runs")
    }
    assert (
        rows[stale.run_id]["status"],
        rows[stale.run_id]["attempt"],
        rows[stale.run_id]["worker_id"],
    ) == ("pending", 1, None)
    assert rows[fresh.run_id]["status"] == "running"


async def test_after_max_attempts_the_run_errors_with_a_message_naming_them(
    pool: asyncpg.Pool,
) -> None:
    t = uuid7()
    [sub] = await queue.submit(pool, [NewRun(thread_id=t, max_attempts=2)])
    sweeper = Sweeper(pool, SweeperConfig(stale_after=30))
    for _ in range(2):
        await queue.claim(pool, "doomed-worker", 1)
        await _age_heartbeats(pool, 60)
        await sweeper.run_once()
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["status"] == "error" and run["ended_at"] is not None
    assert run["error"]["error"] == "MaxAttemptsExceeded"
    message = run["error"]["message"]
    assert (
        "attempted 2 times" in message
        and "max_attempts 2" in message
        and "doomed-worker" in message
    )
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", t) == "error"


async def test_dead_workers_are_removed_and_live_ones_kept(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency, heartbeat_at) VALUES "
        "('dead', 'h', 1, 1, now() - interval '5 minutes'), ('alive', 'h', 2, 1, now())"
    )
    result = await Sweeper(pool, SweeperConfig(stale_after=30)).run_once()
    assert result.workers_removed == 1
    assert [r["worker_id"] for r in await pool.fetch("SELECT worker_id FROM workers")] == ["alive"]


async def test_requeue_notifies_workers(pool: asyncpg.Pool, database_url: str) -> None:
    await _silent_run(pool, wake=False)
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(WAKE_CHANNEL, lambda *a: got.put_nowait(a[3]))
    try:
        await Sweeper(pool, SweeperConfig(stale_after=30)).run_once()
        await asyncio.wait_for(got.get(), 5)
    finally:
        await listener.close()


async def test_only_one_sweeper_at_a_time(pool: asyncpg.Pool) -> None:
    await _silent_run(pool)
    sweeper = Sweeper(pool, SweeperConfig(stale_after=30))
    async with pool.acquire() as other, other.transaction():
        await other.execute(SWEEP_LOCK)  # another process is sweeping
        assert (await sweeper.run_once()).requeued == 0
    assert (await sweeper.run_once()).requeued == 1


async def test_sweep_default_window_comes_from_the_database_setting(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await _silent_run(pool, 10)
    conn = await asyncpg.connect(database_url, server_settings={"pgqueue.lease_timeout": "5s"})
    try:
        assert (await queue.sweep(conn)).requeued == 1  # 10 s > 5 s
    finally:
        await conn.close()


async def test_sweeper_loop_runs_until_stopped(pool: asyncpg.Pool) -> None:
    await _silent_run(pool)
    sweeper = Sweeper(pool, SweeperConfig(interval=0.05, stale_after=30))
    task = asyncio.create_task(sweeper.run())
    deadline = asyncio.get_running_loop().time() + 10
    while await pool.fetchval("SELECT status FROM runs") != "pending":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    sweeper.stop()
    await asyncio.wait_for(task, 5)

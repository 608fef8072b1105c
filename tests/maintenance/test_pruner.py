"""The pruner: stream events and finished runs past their retention, in
batches, one process at a time; time is faked by back-dating rows."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.maintenance.pruner import DAY, Pruner, PrunerConfig

PRUNE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('pgqueue.prune', 0))"


async def _events(pool: asyncpg.Pool, run_id: UUID, n: int = 5) -> None:
    await pool.execute(
        "INSERT INTO run_events (run_id, seq, attempt, event, data) "
        "SELECT $1, s, 1, 'values', '{}' FROM generate_series(1, $2) s",
        run_id,
        n,
    )


async def _ended(pool: asyncpg.Pool, run_id: UUID, ago: str, status: str = "success") -> None:
    await pool.execute(
        "UPDATE runs SET status = $2, ended_at = now() - $3::text::interval WHERE run_id = $1",
        run_id,
        status,
        ago,
    )


async def _runs(pool: asyncpg.Pool) -> set[UUID]:
    return {r["run_id"] for r in await pool.fetch("SELECT run_id FROM runs")}


async def test_events_of_long_finished_runs_go_and_the_others_stay(pool: asyncpg.Pool) -> None:
    old, recent, live = await queue.submit(pool, [NewRun(), NewRun(), NewRun()])
    for run in (old, recent, live):
        await _events(pool, run.run_id)
    await _ended(pool, old.run_id, "2 hours")
    await _ended(pool, recent.run_id, "0 seconds")
    pruner = Pruner(pool, PrunerConfig(event_retention=3600, batch_size=2))
    result = await pruner.run_once()
    assert (result.events, result.runs, result.skipped) == (5, 0, False)
    # 2 + 2 + 1 events, then one empty batch of runs and one of expired threads.
    assert result.batches == 3 + 1 + 1
    left = dict(await pool.fetch("SELECT run_id, count(*) FROM run_events GROUP BY run_id"))
    assert left == {recent.run_id: 5, live.run_id: 5}


async def test_finished_runs_past_retention_go_except_each_threads_newest(
    pool: asyncpg.Pool,
) -> None:
    t = uuid7()
    # A thread's history, oldest first: three old runs, the newest of which
    # the thread still reads; a thread with one old run; a run with no thread.
    first, second, newest = await queue.submit(pool, [NewRun(thread_id=t) for _ in range(3)])
    [alone] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    [stateless] = await queue.submit(pool, [NewRun()])
    [pending] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    [recent] = await queue.submit(pool, [NewRun()])
    for run, status in ((first, "success"), (second, "error"), (stateless, "interrupted")):
        await _ended(pool, run.run_id, "31 days", status)
    await _ended(pool, newest.run_id, "40 days")
    await _ended(pool, alone.run_id, "40 days")
    await _ended(pool, recent.run_id, "29 days")
    await _events(pool, second.run_id)  # an event retention longer than the runs'
    pruner = Pruner(pool, PrunerConfig(event_retention=60 * DAY, run_batch_size=2))
    result = await pruner.run_once()
    assert (result.runs, result.events, result.skipped) == (3, 0, False)
    assert await _runs(pool) == {newest.run_id, alone.run_id, pending.run_id, recent.run_id}
    assert await pool.fetchval("SELECT count(*) FROM run_events") == 0  # went with their run
    assert (await pruner.run_once()).runs == 0


async def test_a_thread_whose_newest_run_goes_keeps_the_one_before_it(
    pool: asyncpg.Pool,
) -> None:
    # "Newest" is by submission order (seq), not by end: a newer run that
    # ended first still outranks an older one that is kept for the thread.
    t = uuid7()
    older, newer = await queue.submit(pool, [NewRun(thread_id=t), NewRun(thread_id=t)])
    await _ended(pool, older.run_id, "31 days")
    await _ended(pool, newer.run_id, "32 days")
    await Pruner(pool).run_once()
    assert await _runs(pool) == {newer.run_id}


async def test_while_another_process_prunes_a_pass_deletes_nothing(pool: asyncpg.Pool) -> None:
    old, streamed = await queue.submit(pool, [NewRun(), NewRun()])
    await _ended(pool, old.run_id, "31 days")
    await _events(pool, streamed.run_id)
    await _ended(pool, streamed.run_id, "2 hours")
    pruner = Pruner(pool)
    async with pool.acquire() as other, other.transaction():
        await other.execute(PRUNE_LOCK)
        result = await pruner.run_once()
        assert (result.skipped, result.events, result.runs, result.batches) == (True, 0, 0, 1)
        # Each statement on its own, too (the pass stopped at the first).
        for statement, age in ((queries.prune_events, 3600), (queries.prune_runs, 30 * DAY)):
            row = await pool.fetchrow(statement, timedelta(seconds=age), 10, None)
            assert row is not None and (row["mine"], row["deleted"]) == (False, 0)
        assert await _runs(pool) == {old.run_id, streamed.run_id}
        assert await pool.fetchval("SELECT count(*) FROM run_events") == 5
    result = await pruner.run_once()
    assert (result.skipped, result.events, result.runs) == (False, 5, 1)
    assert await _runs(pool) == {streamed.run_id}

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
    # 2 + 2 + 1 events, then one empty batch each of runs, expired threads
    # and checkpoint garbage.
    assert result.batches == 3 + 1 + 1 + 1
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


CHECKPOINT = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, type, checkpoint)
VALUES ($1, '', $2, 'json', jsonb_build_object('channel_versions', $3::jsonb))
"""
BLOB = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES ($1, '', $2, $3, 'json', '\\x00')
"""
WRITE = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, blob)
VALUES ($1, '', $2, 't', 0, 'a', '\\x00')
"""


async def _checkpoint_rows(pool: asyncpg.Pool, thread_id: str) -> None:
    """Checkpoint c2 names a@2 and b@1; a@1 is the blob of a checkpoint a
    rollback deleted (c1), and so is c1's write."""
    await pool.execute(CHECKPOINT, thread_id, "c2", '{"a": "2", "b": "1"}')
    for channel, version in (("a", "1"), ("a", "2"), ("b", "1")):
        await pool.execute(BLOB, thread_id, channel, version)
    for checkpoint_id in ("c1", "c2"):
        await pool.execute(WRITE, thread_id, checkpoint_id)


async def _blobs_and_writes(pool: asyncpg.Pool, thread_id: str) -> tuple[set[str], set[str]]:
    blobs = await pool.fetch(
        "SELECT channel || '@' || version AS b FROM checkpoint_blobs WHERE thread_id = $1",
        thread_id,
    )
    writes = await pool.fetch(
        "SELECT checkpoint_id FROM checkpoint_writes WHERE thread_id = $1", thread_id
    )
    return {r["b"] for r in blobs}, {r["checkpoint_id"] for r in writes}


async def test_blobs_and_writes_no_checkpoint_needs_go_unless_a_run_is_writing(
    pool: asyncpg.Pool,
) -> None:
    idle, busy = uuid7(), uuid7()
    [done] = await queue.submit(pool, [NewRun(thread_id=idle)])
    await _ended(pool, done.run_id, "1 minute")
    [live] = await queue.submit(pool, [NewRun(thread_id=busy)])
    for thread in (idle, busy):
        await _checkpoint_rows(pool, str(thread))
    # One statement per pass, which finds fewer threads than it may take:
    # the table's end, so the next pass starts again from the first thread.
    pruner = Pruner(pool, PrunerConfig(garbage_threads=3, garbage_batches=1))
    result = await pruner.run_once()
    assert result.garbage == 2, result  # a@1 and c1's write
    assert await _blobs_and_writes(pool, str(idle)) == ({"a@2", "b@1"}, {"c2"})
    assert await _blobs_and_writes(pool, str(busy)) == ({"a@1", "a@2", "b@1"}, {"c1", "c2"})
    await _ended(pool, live.run_id, "1 minute")
    assert (await pruner.run_once()).garbage == 2  # the run that was writing ended
    assert await _blobs_and_writes(pool, str(busy)) == ({"a@2", "b@1"}, {"c2"})
    assert (await pruner.run_once()).garbage == 0


async def test_checkpoint_garbage_goes_on_round_the_threads_pass_after_pass(
    pool: asyncpg.Pool,
) -> None:
    threads = [str(uuid7()) for _ in range(3)]
    for thread in threads:
        await _checkpoint_rows(pool, thread)
    # One thread per pass: each pass takes the next one, not the first again.
    pruner = Pruner(pool, PrunerConfig(garbage_threads=1, garbage_batches=1))
    for i, thread in enumerate(threads):
        assert (await pruner.run_once()).garbage == 2
        left = [await _blobs_and_writes(pool, t) for t in threads]
        assert [b for b, _ in left] == [{"a@2", "b@1"}] * (i + 1) + [{"a@1", "a@2", "b@1"}] * (
            2 - i
        ), thread
    assert (await pruner.run_once()).garbage == 0  # past the last thread: round again

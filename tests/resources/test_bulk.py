"""``pgqueue.resources.bulk`` without the command line: batches that can be
stopped between, retry's bookkeeping, and a cancel through the API's."""

from __future__ import annotations

import asyncio

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7
from pgqueue.resources import admin, bulk


async def failed_runs(pool: asyncpg.Pool, n: int, max_attempts: int = 3) -> list:
    """``n`` runs on one thread, each failed once, in seq order."""
    thread = uuid7()
    runs = await queue.submit(
        pool, [NewRun(thread_id=thread, max_attempts=max_attempts) for _ in range(n)]
    )
    for _ in runs:
        [c] = await queue.claim(pool, "w", 1)
        await queue.complete(pool, "w", [Completion(c.run_id, c.attempt, "error")])
    return [r.run_id for r in runs]


async def test_a_stop_between_batches_leaves_the_rest_untouched(pool: asyncpg.Pool) -> None:
    ids = await failed_runs(pool, 5)
    stop = asyncio.Event()
    seen: list[tuple[int, int]] = []

    def progress(so_far: bulk.BulkResult) -> None:
        seen.append((so_far.done, so_far.total))
        stop.set()

    result = await bulk.retry(pool, ids, batch_size=2, progress=progress, stop=stop)
    assert (result.total, result.done, result.stopped) == (5, 2, True)
    assert seen == [(2, 5)]
    rows = await pool.fetch("SELECT run_id, status FROM runs")
    status = {r["run_id"]: r["status"] for r in rows}
    assert [status[i] for i in ids] == ["pending", "pending", "error", "error", "error"]


async def test_retry_skips_what_changed_and_keeps_the_attempt(pool: asyncpg.Pool) -> None:
    ids = await failed_runs(pool, 3, max_attempts=1)
    chosen = await admin.find_run_ids(pool, admin.RunFilter(statuses=admin.RETRYABLE))
    assert chosen == ids
    # Retried by someone else meanwhile: this retry leaves it.
    first = await bulk.retry(pool, ids[:1])
    assert first.outcomes == {ids[0]: "retried"}
    result = await bulk.retry(pool, chosen, batch_size=10)
    assert (result.done, result.skipped) == (2, 1)
    rows = await pool.fetch(
        "SELECT attempt, max_attempts, status FROM runs WHERE run_id = ANY($1)", ids
    )
    assert {(r["attempt"], r["max_attempts"], r["status"]) for r in rows} == {(1, 2, "pending")}


async def test_cancel_in_batches_ends_pending_runs(pool: asyncpg.Pool) -> None:
    subs = await queue.submit(pool, [NewRun(thread_id=uuid7()) for _ in range(3)])
    ids = [s.run_id for s in subs]
    result = await bulk.cancel(pool, ids, batch_size=2)
    assert result.outcomes == dict.fromkeys(ids, "interrupted")
    again = await bulk.cancel(pool, ids)
    assert (again.done, again.skipped) == (0, 3)

"""Submit, claim, complete, release: the data operations on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7
from pgqueue.types import WAKE_CHANNEL


async def test_submit_then_claim_sets_lease_fields(pool: asyncpg.Pool) -> None:
    thread = uuid7()
    [sub] = await queue.submit(
        pool, [NewRun(thread_id=thread, kwargs={"x": 1}, metadata={"m": "y"})]
    )
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "busy"
    [run] = await queue.claim(pool, "w1", 5)
    assert (run.run_id, run.attempt, run.kwargs, run.metadata) == (
        sub.run_id,
        1,
        {"x": 1},
        {"m": "y"},
    )
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None
    assert row["status"] == "running" and row["worker_id"] == "w1"
    assert row["heartbeat_at"] is not None and row["started_at"] is not None


async def test_batch_submit_keeps_order_in_one_statement(pool: asyncpg.Pool) -> None:
    runs = [NewRun(kwargs={"i": i}) for i in range(1000)]
    submitted = await queue.submit(pool, runs)
    assert [s.run_id for s in submitted] == [r.run_id for r in runs]
    assert [s.seq for s in submitted] == sorted(s.seq for s in submitted)


async def test_concurrent_claimers_get_each_run_exactly_once(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await queue.submit(pool, [NewRun() for _ in range(5000)], wake=False)
    conns = [await asyncpg.connect(database_url) for _ in range(8)]
    claims: list[list] = [[] for _ in conns]

    async def claimer(i: int) -> None:
        while batch := await queue.claim(conns[i], f"claimer-{i}", 10):
            claims[i].extend(r.run_id for r in batch)

    try:
        await asyncio.gather(*(claimer(i) for i in range(8)))
    finally:
        for c in conns:
            await c.close()
    every = [rid for per in claims for rid in per]
    assert len(every) == 5000
    assert len(set(every)) == 5000
    assert sum(1 for per in claims if per) >= 2, "claims should interleave across connections"
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'running' AND attempt = 1) AS ok, count(*) AS total FROM runs"
    )
    assert counts["ok"] == counts["total"] == 5000


async def test_rolled_back_submit_wakes_nobody_and_leaves_no_row(
    pool: asyncpg.Pool, database_url: str
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(WAKE_CHANNEL, lambda *a: received.put_nowait(a[3]))
    try:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            [sub] = await queue.submit(conn, [NewRun()])
            await tx.rollback()
            # Notifications arrive in commit order: if the first one we get is
            # this committed sentinel, the rolled-back submit sent nothing.
            await conn.execute("SELECT pg_notify($1, 'sentinel')", WAKE_CHANNEL)
        assert await asyncio.wait_for(received.get(), 5) == "sentinel"
        assert await queue.get_run(pool, sub.run_id) is None
        assert await pool.fetchval("SELECT count(*) FROM runs") == 0
        # And a committed submit does wake listeners.
        await queue.submit(pool, [NewRun()])
        assert await asyncio.wait_for(received.get(), 5) == ""
    finally:
        await listener.close()


async def test_per_thread_fifo(pool: asyncpg.Pool) -> None:
    t, u = uuid7(), uuid7()
    subs = await queue.submit(pool, [NewRun(thread_id=t, kwargs={"i": i}) for i in range(3)])
    [other] = await queue.submit(pool, [NewRun(thread_id=u, priority=-5)])
    first = await queue.claim(pool, "w", 10)
    assert [r.run_id for r in first] == [subs[0].run_id, other.run_id]
    assert await queue.claim(pool, "w", 10) == []  # t's next run waits for its first
    current = next(r for r in first if r.run_id == subs[0].run_id)
    for i in (1, 2):
        await queue.complete(pool, "w", [Completion(current.run_id, current.attempt, "success")])
        [current] = await queue.claim(pool, "w", 10)
        assert current.run_id == subs[i].run_id
    await queue.complete(pool, "w", [Completion(current.run_id, current.attempt, "success")])
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", t) == "idle"
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", u) == "busy"


async def test_a_second_running_run_on_a_thread_is_refused_by_the_database(
    pool: asyncpg.Pool,
) -> None:
    t = uuid7()
    a, b = await queue.submit(pool, [NewRun(thread_id=t), NewRun(thread_id=t)])
    await queue.claim(pool, "w", 1)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("UPDATE runs SET status = 'running' WHERE run_id = $1", b.run_id)


async def test_priority_then_creation_order(pool: asyncpg.Pool) -> None:
    low, high, low2 = await queue.submit(
        pool, [NewRun(priority=0), NewRun(priority=5), NewRun(priority=0)]
    )
    claimed = await queue.claim(pool, "w", 3)
    assert [r.run_id for r in claimed] == [high.run_id, low.run_id, low2.run_id]


async def test_delayed_run_is_not_claimed_before_not_before(pool: asyncpg.Pool) -> None:
    [sub] = await queue.submit(pool, [NewRun(delay=3600)])
    assert sub.not_before - sub.created_at > timedelta(minutes=59)
    assert await queue.claim(pool, "w", 10) == []
    due = await queue.next_due_in(pool)
    # Measured from a "now" between the submit and the read below.
    read_at = await pool.fetchval("SELECT now()")
    assert due is not None
    assert (sub.not_before - read_at).total_seconds() <= due
    assert due <= (sub.not_before - sub.created_at).total_seconds()
    await pool.execute("UPDATE runs SET not_before = now() - interval '1 ms'")
    assert len(await queue.claim(pool, "w", 10)) == 1


async def test_final_write_is_fenced_by_attempt(pool: asyncpg.Pool) -> None:
    [sub] = await queue.submit(pool, [NewRun()])
    [first] = await queue.claim(pool, "old", 1)
    await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
    assert (await queue.sweep(pool, 30)).requeued == 1
    [second] = await queue.claim(pool, "new", 1)
    assert second.attempt == first.attempt + 1
    # The old holder's write matches nothing and changes nothing.
    assert (
        await queue.complete(
            pool, "old", [Completion(sub.run_id, first.attempt, "success", output="old")]
        )
        == {}
    )
    # The fence names the holder too: the right attempt from the wrong worker
    # (a claim the server forgot in a crash, then handed out again) is refused.
    assert (
        await queue.complete(
            pool, "old", [Completion(sub.run_id, second.attempt, "success", output="old")]
        )
        == {}
    )
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None and row["status"] == "running" and row["worker_id"] == "new"
    held = await queue.complete(
        pool, "new", [Completion(sub.run_id, second.attempt, "success", output="new")]
    )
    assert held == {sub.run_id: "success"}
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None and row["output"] == "new"


async def test_failures_retry_with_backoff_then_error(pool: asyncpg.Pool) -> None:
    t = uuid7()
    [sub] = await queue.submit(pool, [NewRun(thread_id=t, max_attempts=2)])
    [run] = await queue.claim(pool, "w", 1)
    err = {"error": "ValueError", "message": "boom"}
    assert await queue.complete(
        pool, "w", [Completion(run.run_id, run.attempt, "error", error=err, retry_delay=30)]
    ) == {sub.run_id: "pending"}
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None and row["error"] == err and row["worker_id"] is None
    assert timedelta(seconds=29) < row["not_before"] - row["updated_at"] <= timedelta(seconds=31)
    assert await queue.claim(pool, "w", 1) == []  # backing off
    await pool.execute("UPDATE runs SET not_before = now()")
    [run] = await queue.claim(pool, "w", 1)
    assert run.attempt == 2
    done = await queue.complete(
        pool, "w", [Completion(run.run_id, run.attempt, "error", error=err, retry_delay=30)]
    )
    assert done == {sub.run_id: "error"}  # attempts used up: no more retries
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", t) == "error"


async def test_release_puts_back_without_spending_an_attempt(pool: asyncpg.Pool) -> None:
    [sub] = await queue.submit(pool, [NewRun(max_attempts=1)])
    [run] = await queue.claim(pool, "w", 1)
    assert await queue.release(pool, "w", [run.lease]) == {sub.run_id}
    assert await queue.release(pool, "w", [run.lease]) == set()  # fenced: already released
    [again] = await queue.claim(pool, "w", 1)
    assert again.attempt == 2  # the fencing token still grows
    await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
    # One real attempt spent out of one allowed: the sweep fails it now.
    assert (await queue.sweep(pool, 30)).failed == 1


async def test_non_json_kwargs_are_rejected_before_any_write(pool: asyncpg.Pool) -> None:
    with pytest.raises(TypeError):
        await queue.submit(pool, [NewRun(), NewRun(kwargs={"x": object()})])
    assert await pool.fetchval("SELECT count(*) FROM runs") == 0
    with pytest.raises(ValueError, match="max_attempts"):
        await queue.submit(pool, [NewRun(max_attempts=0)])


async def test_outputs_round_trip_as_json(pool: asyncpg.Pool) -> None:
    [sub] = await queue.submit(pool, [NewRun()])
    [run] = await queue.claim(pool, "w", 1)
    out = {"messages": ["a", "b"], "n": 1.5, "nested": {"ok": True}}
    await queue.complete(pool, "w", [Completion(run.run_id, run.attempt, "success", output=out)])
    assert json.loads(await pool.fetchval("SELECT output::text FROM runs")) == out


async def test_submit_creates_missing_threads_busy_in_the_same_statement(
    pool: asyncpg.Pool,
) -> None:
    existing, new = uuid7(), uuid7()
    await pool.execute("INSERT INTO threads (thread_id) VALUES ($1)", existing)
    await queue.submit(
        pool, [NewRun(thread_id=existing), NewRun(thread_id=new), NewRun(thread_id=new)]
    )
    statuses = dict(await pool.fetch("SELECT thread_id, status FROM threads"))
    assert statuses == {existing: "busy", new: "busy"}
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await queue.submit(pool, [NewRun(thread_id=uuid7())], create_threads=False)
    assert await pool.fetchval("SELECT count(*) FROM runs") == 3

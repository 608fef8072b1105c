"""The pruner as SQL: ``CALL pgqueue_prune()`` (migration 0012), the form a
pg_cron job runs, and ``pgqueue prune``, the pass from the command line.
Time is faked by back-dating rows."""

from __future__ import annotations

import asyncio
import json
import re
import time
from uuid import UUID

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.maintenance.pruner import PrunerConfig
from tests.maintenance.test_pruner import (
    PRUNE_LOCK,
    _blobs_and_writes,
    _checkpoint_rows,
    _ended,
    _events,
    _runs,
)
from tests.support.procs import run_cli


async def _history(pool: asyncpg.Pool) -> dict[str, UUID]:
    """Something of each kind the pruner deletes, and what it must keep."""
    t, expiring = uuid7(), uuid7()
    old, newest = await queue.submit(pool, [NewRun(thread_id=t), NewRun(thread_id=t)])
    [streamed] = await queue.submit(pool, [NewRun()])
    [pending] = await queue.submit(pool, [NewRun()])
    [on_expiring] = await queue.submit(pool, [NewRun(thread_id=expiring)])
    await _ended(pool, old.run_id, "31 days")
    await _ended(pool, newest.run_id, "31 days")
    await _ended(pool, on_expiring.run_id, "1 hour")
    await _events(pool, streamed.run_id, 6)
    await _ended(pool, streamed.run_id, "2 hours")
    await pool.execute(
        "UPDATE threads SET status = 'idle', ttl_strategy = 'delete', ttl_minutes = 1 "
        "WHERE thread_id = $1",
        expiring,
    )
    await pool.execute(
        "UPDATE threads SET expires_at = now() - interval '1 minute' WHERE thread_id = $1",
        expiring,
    )
    await _checkpoint_rows(pool, str(expiring))
    await _checkpoint_rows(pool, str(t))  # garbage: a@1 and c1's write
    return {
        "thread": t,
        "expiring": expiring,
        "old": old.run_id,
        "newest": newest.run_id,
        "streamed": streamed.run_id,
        "pending": pending.run_id,
    }


async def _what_is_left(pool: asyncpg.Pool, h: dict[str, UUID]) -> None:
    assert await _runs(pool) == {h["newest"], h["streamed"], h["pending"]}
    assert await pool.fetchval("SELECT count(*) FROM run_events") == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM threads WHERE thread_id = $1", h["expiring"]) == 0
    )
    assert await _blobs_and_writes(pool, str(h["expiring"])) == (set(), set())
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM checkpoints WHERE thread_id = $1", str(h["expiring"])
        )
        == 0
    )
    assert await _blobs_and_writes(pool, str(h["thread"])) == ({"a@2", "b@1"}, {"c2"})


async def test_the_procedure_deletes_what_the_pruner_does(pool: asyncpg.Pool) -> None:
    h = await _history(pool)
    await pool.execute("CALL pgqueue_prune(batch_size => 2, run_batch_size => 1)")
    await _what_is_left(pool, h)


async def test_the_procedures_defaults_are_the_pruners(pool: asyncpg.Pool) -> None:
    """A hand-written ``CALL pgqueue_prune()`` prunes as the in-process
    pruner does: each parameter's default (0012, pause ratio 0014) is
    PrunerConfig's."""
    arguments = await pool.fetchval("SELECT pg_get_function_arguments('pgqueue_prune'::regproc)")
    defaults = dict(re.findall(r"IN (\w+) [a-z ]+ DEFAULT ('[^']*'::interval|[\d.]+)", arguments))
    config = PrunerConfig()
    seconds = {"event_retention", "run_retention"}
    assert set(defaults) == seconds | {
        "batch_size",
        "run_batch_size",
        "thread_batch_size",
        "garbage_threads",
        "garbage_batches",
        "pause_ratio",
        "batch_pause",
    }
    for name, default in defaults.items():
        unit = "extract(epoch FROM {})" if name in seconds else "{}"
        value = await pool.fetchval(f"SELECT ({unit.format(default)})::double precision")
        assert value == getattr(config, name), name


async def test_the_procedure_commits_each_batch_before_the_next(pool: asyncpg.Pool) -> None:
    # 6 events in batches of 2, a second's pause between batches: another
    # session sees the first batches gone while the CALL is still running,
    # so no pass is one long transaction that pins the vacuum horizon.
    await _streamed_long_ago(pool, 6)
    call = asyncio.create_task(
        pool.execute("CALL pgqueue_prune(batch_size => 2, batch_pause => 1)")
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while not call.done():
        assert time.monotonic() < deadline, "the CALL did not end within 60 s"
        seen.add(await pool.fetchval("SELECT count(*) FROM run_events"))
        await asyncio.sleep(0.02)
    await call
    assert seen & {2, 4}, f"no batch was visible before the pass ended (counts seen: {seen})"
    assert await pool.fetchval("SELECT count(*) FROM run_events") == 0


async def _streamed_long_ago(pool: asyncpg.Pool, events: int = 5) -> UUID:
    """A run with ``events`` events, ended two hours ago: its events go."""
    [run] = await queue.submit(pool, [NewRun()])
    await _events(pool, run.run_id, events)
    await _ended(pool, run.run_id, "2 hours")
    return run.run_id


async def test_the_procedure_ends_at_once_while_another_session_prunes(
    pool: asyncpg.Pool,
) -> None:
    await _streamed_long_ago(pool)
    async with pool.acquire() as other, other.transaction():
        await other.execute(PRUNE_LOCK)
        await pool.execute("CALL pgqueue_prune()")
        assert await pool.fetchval("SELECT count(*) FROM run_events") == 5
    await pool.execute("CALL pgqueue_prune()")
    assert await pool.fetchval("SELECT count(*) FROM run_events") == 0


async def test_pgqueue_prune_deletes_and_reports_what_it_deleted(
    pool: asyncpg.Pool, database_url: str
) -> None:
    h = await _history(pool)
    result = await asyncio.to_thread(run_cli, database_url, "prune", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["events"] == 6 and report["runs"] == 1 and report["threads_deleted"] == 1
    assert report["garbage"] == 2 and report["skipped"] is False
    await _what_is_left(pool, h)
    # A shorter run retention, by flag: each thread's newest run still stays.
    await _ended(pool, h["streamed"], "2 days")
    result = await asyncio.to_thread(run_cli, database_url, "prune", "--run-retention-days", "1")
    assert result.returncode == 0, result.stderr
    assert "runs=1" in result.stdout.split()
    assert await _runs(pool) == {h["newest"], h["pending"]}


async def test_pgqueue_prune_exits_3_while_another_process_prunes(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await _streamed_long_ago(pool)
    async with pool.acquire() as other, other.transaction():
        await other.execute(PRUNE_LOCK)
        result = await asyncio.to_thread(run_cli, database_url, "prune")
    assert result.returncode == 3, result.stderr
    assert "another process was pruning" in result.stderr
    assert await pool.fetchval("SELECT count(*) FROM run_events") == 5

"""``pgqueue stats`` in a real subprocess: what it reports agrees with the
rows in the database, as a table and as JSON."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7
from tests.support.procs import run_cli


async def register(pool: asyncpg.Pool, worker: str, slots: int, silent_for: str) -> None:
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency, heartbeat_at)"
        " VALUES ($1, 'box', 7, $2, now() - $3::text::interval)",
        worker,
        slots,
        silent_for,
    )


async def test_stats_reports_the_queue_as_the_database_has_it(
    database_url: str, pool: asyncpg.Pool
) -> None:
    empty = await asyncio.to_thread(run_cli, database_url, "stats", "--json")
    assert empty.returncode == 0, empty.stderr
    nothing = json.loads(empty.stdout)
    assert nothing["runs"] == dict.fromkeys(
        ["pending", "running", "success", "error", "timeout", "interrupted"], 0
    )
    assert nothing["error_share_5m"] is None and nothing["workers"] == []

    await register(pool, "alive", 4, "1 second")
    await register(pool, "dead", 2, "10 minutes")
    # Two running runs: one held by the live worker, one by the dead one
    # (stale: its heartbeat is older than the lease window).
    await queue.submit(pool, [NewRun(thread_id=uuid7()), NewRun(thread_id=uuid7())])
    await queue.claim(pool, "alive", 1)
    [stale] = await queue.claim(pool, "dead", 1)
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - interval '10 minutes' WHERE run_id = $1",
        stale.run_id,
    )
    # Ended runs: 3 successes and 1 error just now, 1 timeout 30 minutes ago.
    await queue.submit(pool, [NewRun(thread_id=uuid7()) for _ in range(5)])
    claimed = await queue.claim(pool, "alive", 5)
    outcomes = ["success", "success", "success", "error", "timeout"]
    await queue.complete(
        pool,
        "alive",
        [Completion(c.run_id, c.attempt, s) for c, s in zip(claimed, outcomes, strict=True)],
    )
    await pool.execute(
        "UPDATE runs SET ended_at = now() - interval '30 minutes' WHERE status = 'timeout'"
    )
    # Pending: 2 ready, 1 delayed, the oldest created an hour ago.
    await queue.submit(
        pool,
        [NewRun(thread_id=uuid7()), NewRun(thread_id=uuid7()), NewRun(delay=3600)],
    )
    await pool.execute(
        "UPDATE runs SET created_at = now() - interval '1 hour'"
        " WHERE run_id = (SELECT run_id FROM runs WHERE status = 'pending' ORDER BY seq LIMIT 1)"
    )

    result = await asyncio.to_thread(run_cli, database_url, "stats", "--json")
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["runs"] == {
        "pending": 3,
        "running": 2,
        "success": 3,
        "error": 1,
        "timeout": 1,
        "interrupted": 0,
    }
    assert (s["ready"], s["delayed"]) == (2, 1)
    assert 3590 <= s["oldest_pending_age"] < 7200
    assert s["stale_runs"] == 1
    assert (s["workers_alive"], s["slots"], s["running_on_alive"]) == (1, 4, 1)
    assert {w["worker_id"]: w["alive"] for w in s["workers"]} == {"alive": True, "dead": False}
    assert (s["ended_5m"], s["failed_5m"]) == (4, 1)
    assert (s["ended_1h"], s["failed_1h"]) == (5, 2)
    assert s["error_share_5m"] == 0.25 and s["error_share_1h"] == 0.4

    table = await asyncio.to_thread(run_cli, database_url, "stats")
    assert table.returncode == 0, table.stderr
    for words in ("pending", "workers alive", "1 of 2 registered", "1 running of 4", "25.0%"):
        assert words in table.stdout, (words, table.stdout)
    assert "alive" in table.stdout and "dead" in table.stdout

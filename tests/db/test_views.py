"""The inspection views, queried exactly as README shows them."""

from __future__ import annotations

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7


async def test_views_answer_the_readme_questions(pool: asyncpg.Pool) -> None:
    t = uuid7()
    subs = await queue.submit(
        pool, [NewRun(thread_id=t), NewRun(thread_id=t), NewRun(), NewRun(delay=600)]
    )
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency) VALUES ('w1', 'host-a', 42, 10)"
    )
    claimed = await queue.claim(pool, "w1", 10)
    assert len(claimed) == 2  # thread t's first run and the unthreaded one
    first = next(r for r in claimed if r.run_id == subs[0].run_id)
    await queue.complete(pool, "w1", [Completion(first.run_id, first.attempt, "success")])
    [second] = await queue.claim(pool, "w1", 10)
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - interval '5 minutes' WHERE run_id = $1",
        second.run_id,
    )

    depth = {r["status"]: r for r in await pool.fetch("SELECT * FROM pgqueue_queue_depth")}
    assert (
        depth["pending"]["runs"] == 1
        and depth["pending"]["delayed"] == 1
        and depth["pending"]["ready"] == 0
    )
    assert depth["running"]["runs"] == 2 and depth["success"]["runs"] == 1

    stale = await pool.fetch("SELECT run_id, worker_id, heartbeat_age FROM pgqueue_stale_runs")
    assert [r["run_id"] for r in stale] == [second.run_id]
    assert stale[0]["heartbeat_age"].total_seconds() >= 300

    [worker] = await pool.fetch("SELECT * FROM pgqueue_workers")
    assert worker["worker_id"] == "w1" and worker["alive"] and worker["running"] == 2
    assert set(worker["run_ids"]) == {subs[2].run_id, second.run_id}

    history = await pool.fetch(
        "SELECT run_id, status FROM pgqueue_thread_runs WHERE thread_id = $1 ORDER BY seq", t
    )
    assert [(r["run_id"], r["status"]) for r in history] == [
        (subs[0].run_id, "success"),
        (subs[1].run_id, "running"),
    ]

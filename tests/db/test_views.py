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


async def test_running_runs_and_thread_run_durations_and_errors(pool: asyncpg.Pool) -> None:
    t = uuid7()
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency) VALUES ('w1', 'host-a', 42, 10)"
    )
    [ok, bad, quiet, fresh] = await queue.submit(
        pool, [NewRun(thread_id=t), NewRun(thread_id=t), NewRun(), NewRun()]
    )
    claimed = {r.run_id: r for r in await queue.claim(pool, "w1", 10)}
    assert set(claimed) == {ok.run_id, quiet.run_id, fresh.run_id}
    # ok ran for exactly 90 s (dates set, not slept through).
    await queue.complete(pool, "w1", [Completion(ok.run_id, 1, "success")])
    await pool.execute(
        "UPDATE runs SET started_at = ended_at - interval '90 seconds' WHERE run_id = $1",
        ok.run_id,
    )
    [second] = await queue.claim(pool, "w1", 10)
    assert second.run_id == bad.run_id
    await queue.complete(
        pool,
        "w1",
        [Completion(bad.run_id, 1, "error", error={"error": "ValueError", "message": "no good"})],
    )
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - interval '5 minutes' WHERE run_id = $1",
        quiet.run_id,
    )

    running = await pool.fetch("SELECT * FROM pgqueue_running_runs ORDER BY heartbeat_age DESC")
    assert [r["run_id"] for r in running] == [quiet.run_id, fresh.run_id]
    silent, alive = running
    assert silent["worker_id"] == alive["worker_id"] == "w1"
    assert silent["attempt"] == 1 and silent["max_attempts"] == claimed[quiet.run_id].max_attempts
    assert silent["stale"] is True and silent["heartbeat_age"].total_seconds() >= 300
    assert alive["stale"] is False and alive["heartbeat_age"].total_seconds() < 20
    assert silent["started_at"] is not None

    history = await pool.fetch(
        "SELECT seq, run_id, status, attempt, started_at, duration, error_message"
        " FROM pgqueue_thread_runs WHERE thread_id = $1 ORDER BY seq",
        t,
    )
    assert [(r["run_id"], r["status"], r["attempt"]) for r in history] == [
        (ok.run_id, "success", 1),
        (bad.run_id, "error", 1),
    ]
    assert history[0]["duration"].total_seconds() == 90
    assert history[0]["error_message"] is None
    assert history[1]["duration"].total_seconds() >= 0
    assert history[1]["error_message"] == "no good"
    error_type = await pool.fetchval(
        "SELECT error_type FROM pgqueue_thread_runs WHERE run_id = $1", bad.run_id
    )
    assert error_type == "ValueError"

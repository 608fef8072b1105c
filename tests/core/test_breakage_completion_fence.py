"""The completion's fence includes status = 'running' (issue 11, breakage 1).

Attempt and worker id alone do not fence a run whose lease ended without
moving either: the sweep fails a run that used up its attempts and keeps
its worker id (for the error message), and a finished run keeps both. A
late or repeated final write from that holder must change nothing.
"""

from __future__ import annotations

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7


async def test_a_late_write_does_not_overwrite_a_run_the_sweep_failed(pool: asyncpg.Pool) -> None:
    thread = uuid7()
    [sub] = await queue.submit(pool, [NewRun(thread_id=thread, max_attempts=1)])
    [run] = await queue.claim(pool, "frozen", 1)
    await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
    assert (await queue.sweep(pool, 30)).failed == 1
    swept = await queue.get_run(pool, sub.run_id)
    assert swept is not None and swept["status"] == "error" and swept["worker_id"] == "frozen"

    # The frozen worker wakes and writes its outcome with the attempt it held.
    late = await queue.complete(
        pool, "frozen", [Completion(run.run_id, run.attempt, "success", output="late")]
    )
    assert late == {}
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None
    assert (row["status"], row["output"]) == ("error", None)
    assert row["error"]["error"] == "MaxAttemptsExceeded"
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "error"


async def test_a_second_final_write_for_the_same_attempt_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    [sub] = await queue.submit(pool, [NewRun()])
    [run] = await queue.claim(pool, "w", 1)
    first = await queue.complete(
        pool, "w", [Completion(run.run_id, run.attempt, "success", output="first")]
    )
    assert first == {sub.run_id: "success"}
    err = {"error": "ValueError", "message": "second"}
    again = await queue.complete(
        pool, "w", [Completion(run.run_id, run.attempt, "error", error=err)]
    )
    assert again == {}
    row = await queue.get_run(pool, sub.run_id)
    assert row is not None
    assert (row["status"], row["output"], row["error"]) == ("success", "first", None)

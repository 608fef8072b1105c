"""``pgqueue runs ls | show | cancel | retry`` as an operator runs them: real
subprocesses against a real database, their exit codes and their JSON.
Bulk retries over many runs and their interruption: test_bulk.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.db.ids import uuid7
from tests.support.procs import worker_process
from tests.support.run_rows import cli, seed, statuses
from tests.support.waiting import eventually


async def test_ls_filters_and_prints_a_table_or_json(database_url: str, pool: asyncpg.Pool) -> None:
    old_errors = await seed(pool, 3, age="3 hours")
    new_errors = await seed(pool, 2, age="1 minute", graph="other")
    done = await seed(pool, 4, status="success", age="2 hours")
    pending = await seed(pool, 2, status="pending", age="5 seconds", threads=2)
    thread = await pool.fetchval("SELECT thread_id FROM runs WHERE run_id = $1", done[0])

    def ids(*groups: list[UUID]) -> set[str]:
        return {str(i) for group in groups for i in group}

    # Ages with an hour's margin: a loaded machine may take minutes here.
    expected = {
        (): ids(old_errors, new_errors, done, pending),
        ("--status", "error"): ids(old_errors, new_errors),
        ("--status", "error", "--status", "pending"): ids(old_errors, new_errors, pending),
        ("--older-than", "1h"): ids(old_errors, done),
        ("--older-than", "150m", "--status", "error"): ids(old_errors),
        ("--newer-than", "1h"): ids(new_errors, pending),
        ("--assistant", "other"): ids(new_errors),
        ("--thread", str(thread)): ids(done),
    }
    # Concurrently: each subprocess spends most of its time importing.
    calls = [*expected, ("--limit", "3"), ("--status", "error", "--older-than", "1h")]
    results = await asyncio.gather(
        *(cli(database_url, "runs", "ls", "--json", *args) for args in calls)
    )
    listed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for args, result in zip(calls, results, strict=True):
        assert result.returncode == 0, (args, result.stderr)
        listed[args] = json.loads(result.stdout)
    for args, want in expected.items():
        assert {r["run_id"] for r in listed[args]} == want, args
    # Newest first.
    created = [r["created_at"] for r in listed[()]]
    assert created == sorted(created, reverse=True)
    assert len(listed[("--limit", "3")]) == 3
    assert {(r["error_type"], r["attempt"]) for r in listed[calls[-1]]} == {("Boom", 3)}

    table, none = await asyncio.gather(
        cli(database_url, "runs", "ls", "--status", "error"),
        cli(database_url, "runs", "ls", "--status", "timeout"),
    )
    assert table.returncode == 0
    for run_id in old_errors + new_errors:
        assert str(run_id) in table.stdout
    assert "Boom" in table.stdout
    assert none.returncode == 0 and "no runs matched" in none.stdout


async def test_show_prints_one_run_and_exits_3_when_there_is_none(
    database_url: str, pool: asyncpg.Pool
) -> None:
    [run_id] = await seed(pool, 1, status="error", attempt=2)
    await pool.execute(
        "INSERT INTO run_events (run_id, seq, attempt, event, data) VALUES"
        " ($1, 1, 2, 'values', '{}'), ($1, 2, 2, 'end', '{}')",
        run_id,
    )
    result = await cli(database_url, "runs", "show", str(run_id), "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["run_id"] == str(run_id) and run["status"] == "error"
    assert run["attempt"] == 2 and run["max_attempts"] == 3
    assert run["events"] == 2 and run["checkpoints"] == 0
    assert run["error"] == {"error": "Boom", "message": "it broke"}
    assert run["worker_id"] == "old-worker" and run["ended_at"]

    table = await cli(database_url, "runs", "show", str(run_id))
    assert table.returncode == 0
    assert "Boom: it broke" in table.stdout and "2 of 3" in table.stdout

    missing = await cli(database_url, "runs", "show", str(uuid7()))
    assert missing.returncode == 3
    assert "not found" in missing.stderr


async def test_bad_input_exits_2_naming_the_option(database_url: str) -> None:
    cases = [
        (("runs", "ls", "--status", "done"), "--status"),
        (("runs", "ls", "--older-than", "yesterday"), "--older-than"),
        (("runs", "ls", "--newer-than", "5x"), "--newer-than"),
        (("runs", "ls", "--thread", "not-a-uuid"), "--thread"),
        (("runs", "ls", "--limit", "0"), "--limit"),
        (("runs", "show", "42"), "ID"),
        (("runs", "retry", "nope"), "ID"),
        (("runs", "retry", "--status", "success"), "--status"),
        (("runs", "cancel", "--status", "error"), "--status"),
        (("runs", "cancel", "--action", "stop", "--all"), "--action"),
        (("runs", "retry", "--batch-size", "-1", "--all"), "--batch-size"),
        (("runs", "retry"), "name the runs"),
        (("runs", "cancel", str(uuid7()), "--status", "pending"), "not both"),
        (("runs",), "runs"),
    ]
    results = await asyncio.gather(*(cli(database_url, *args) for args, _ in cases))
    for (args, named), result in zip(cases, results, strict=True):
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert named in result.stderr, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)


async def test_an_unreachable_database_exits_4(database_url: str) -> None:
    commands = (("runs", "ls"), ("runs", "retry", "--all"), ("stats",))
    nowhere = ("--database-url", "postgresql://nobody@127.0.0.1:1/none")
    results = await asyncio.gather(*(cli(database_url, *args, *nowhere) for args in commands))
    for args, result in zip(commands, results, strict=True):
        assert result.returncode == 4, (args, result.returncode, result.stderr)
        assert "could not be reached" in result.stderr


async def test_cancel_by_id_and_by_filter(database_url: str, pool: asyncpg.Pool) -> None:
    a, b = await seed(pool, 2, status="pending", threads=2, age="1 hour")
    others = await seed(pool, 3, status="pending", threads=3, age="1 minute")
    [finished] = await seed(pool, 1, status="success")
    unknown = uuid7()

    one = await cli(database_url, "runs", "cancel", str(a), "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["runs"] == {str(a): "interrupted"}
    assert await statuses(pool, [a, b]) == ["interrupted", "pending"]
    # Its thread has nothing left to run.
    assert await pool.fetchval(
        "SELECT t.status FROM threads t JOIN runs r USING (thread_id) WHERE r.run_id = $1", a
    ) in ("idle", "interrupted")

    mixed = await cli(database_url, "runs", "cancel", str(finished), str(unknown), str(b))
    assert mixed.returncode == 3, mixed.stderr
    assert f"{unknown}: not found" in mixed.stdout
    assert f"{finished}: not live (success)" in mixed.stdout
    assert f"{b}: interrupted" in mixed.stdout
    refused = await cli(database_url, "runs", "cancel", str(finished))
    assert refused.returncode == 1

    # Rollback by filter: the young pending runs are deleted, nothing else.
    rolled = await cli(
        database_url, "runs", "cancel", "--newer-than", "10m", "--action", "rollback", "--json"
    )
    assert rolled.returncode == 0, rolled.stderr
    assert json.loads(rolled.stdout)["cancelled"] == 3
    assert await statuses(pool, others) == ["gone"] * 3
    again = await cli(database_url, "runs", "cancel", "--status", "pending")
    assert again.returncode == 1 and "no runs matched" in again.stdout


async def test_cancel_of_a_running_run_tells_its_worker(
    database_url: str, pool: asyncpg.Pool
) -> None:
    [sub] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    await queue.claim(pool, "some-worker", 1)
    told: list[str] = []
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("pgqueue_cancel", lambda *a: told.append(a[3]))
        result = await cli(database_url, "runs", "cancel", "--status", "running", "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["cancelled"] == 1
        await eventually(lambda: asyncio.sleep(0, told), what="the cancel NOTIFY")
    finally:
        await listener.close()
    assert told == [f"{sub.run_id}:interrupt"]
    row = await pool.fetchrow("SELECT status, cancel_action FROM runs")
    assert (row["status"], row["cancel_action"]) == ("running", "interrupt")
    # Asked once: a second cancel by filter leaves it to its worker.
    again = await cli(database_url, "runs", "cancel", "--all")
    assert again.returncode == 1


async def _fail(pool: asyncpg.Pool, worker: str) -> UUID:
    [claimed] = await queue.claim(pool, worker, 1)
    await queue.complete(
        pool, worker, [Completion(claimed.run_id, claimed.attempt, "error", error={"error": "X"})]
    )
    return claimed.run_id


async def test_retry_named_runs_and_a_worker_runs_them_again(
    database_url: str, pool: asyncpg.Pool
) -> None:
    [sub] = await queue.submit(pool, [NewRun(thread_id=uuid7(), max_attempts=1)])
    failed = await _fail(pool, "w1")
    [finished] = await seed(pool, 1, status="success")
    unknown = uuid7()

    woken: list[str] = []
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("pgqueue_runs", lambda *a: woken.append(a[2]))
        result = await cli(database_url, "runs", "retry", str(failed), "--json")
        assert result.returncode == 0, result.stderr
        await eventually(lambda: asyncio.sleep(0, woken), what="the submit's NOTIFY")
    finally:
        await listener.close()
    assert json.loads(result.stdout)["runs"] == {str(failed): "retried"}
    run = await pool.fetchrow("SELECT * FROM runs WHERE run_id = $1", sub.run_id)
    assert run["status"] == "pending" and run["attempt"] == 1
    # It used its one attempt: one more is allowed.
    assert run["max_attempts"] == 2
    assert run["ended_at"] is None and run["worker_id"] is None
    assert run["error"] is not None  # the last attempt's, until it ends again
    assert (
        await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", run["thread_id"])
        == "busy"
    )

    refused = await cli(database_url, "runs", "retry", str(finished), str(failed))
    assert refused.returncode == 1
    assert f"{finished}: not retryable (success)" in refused.stdout
    assert f"{failed}: not retryable (pending)" in refused.stdout
    missing = await cli(database_url, "runs", "retry", str(unknown))
    assert missing.returncode == 3 and f"{unknown}: not found" in missing.stdout

    with worker_process(database_url, "noop"):
        await eventually(
            lambda: pool.fetchval(
                "SELECT status = 'success' FROM runs WHERE run_id = $1", sub.run_id
            ),
            timeout=60,
            what="the retried run to succeed",
        )
    run = await pool.fetchrow("SELECT attempt, error FROM runs WHERE run_id = $1", sub.run_id)
    assert run["attempt"] == 2 and run["error"] is None


async def test_retried_runs_wait_their_turn_on_their_thread(
    database_url: str, pool: asyncpg.Pool
) -> None:
    thread = uuid7()
    a, b, c = await queue.submit(pool, [NewRun(thread_id=thread) for _ in range(3)])
    assert await _fail(pool, "w") == a.run_id
    assert await _fail(pool, "w") == b.run_id
    # c is pending; a and b go back behind it, in their own order, even one
    # per transaction.
    result = await cli(database_url, "runs", "retry", "--thread", str(thread), "--batch-size", "1")
    assert result.returncode == 0, result.stderr
    assert "retried 2 of 2 runs" in result.stdout
    order = [r["run_id"] for r in await pool.fetch("SELECT run_id FROM runs ORDER BY seq")]
    assert order == [c.run_id, a.run_id, b.run_id]
    started = []
    for _ in range(3):
        # One at a time: the thread's next run is not ready while one runs.
        claimed = await queue.claim(pool, "w", 10)
        assert len(claimed) == 1
        started.append(claimed[0].run_id)
        await queue.complete(
            pool, "w", [Completion(claimed[0].run_id, claimed[0].attempt, "success")]
        )
    assert started == [c.run_id, a.run_id, b.run_id]

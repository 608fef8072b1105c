"""``pgqueue runs retry`` over many runs (``pgqueue.cli.bulk``): batches,
progress on stderr (lines in a pipe, a bar on a terminal), and a real SIGINT
half way through, after which every run is either retried or untouched."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from tests.support.procs import REPO, PgqueueProcess
from tests.support.run_rows import cli, seed, statuses
from tests.support.waiting import eventually


async def test_retry_by_filter_over_10000_runs_shows_progress(
    database_url: str, pool: asyncpg.Pool
) -> None:
    failed = await seed(pool, 10_000, threads=100, age="3 hours")
    recent = await seed(pool, 5, age="5 minutes")
    timed_out = await seed(pool, 5, status="timeout", age="3 hours")
    before = {
        r["run_id"]: r["seq"]
        for r in await pool.fetch("SELECT run_id, seq FROM runs WHERE run_id = ANY($1)", failed)
    }
    result = await cli(
        database_url, "runs", "retry", "--status", "error", "--older-than", "1h", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "retried": 10_000,
        "matched": 10_000,
        "skipped": 0,
        "interrupted": False,
    }
    assert "pgqueue: retried 10000/10000" in result.stderr
    rows = await pool.fetch(
        "SELECT run_id, thread_id, seq, status, attempt, max_attempts, ended_at, worker_id,"
        " not_before <= now() AS ready FROM runs WHERE run_id = ANY($1)",
        failed,
    )
    assert len(rows) == 10_000
    for r in rows:
        assert r["status"] == "pending" and r["ready"]
        assert (r["attempt"], r["max_attempts"]) == (3, 4)
        assert r["ended_at"] is None and r["worker_id"] is None
        assert r["seq"] > max(before.values())
    # Each thread's runs keep their order.
    by_thread: dict[UUID, list[tuple[int, int]]] = {}
    for r in rows:
        by_thread.setdefault(r["thread_id"], []).append((r["seq"], before[r["run_id"]]))
    for pairs in by_thread.values():
        pairs.sort()
        assert [old for _, old in pairs] == sorted(old for _, old in pairs)
    assert await pool.fetchval("SELECT count(*) FROM threads WHERE status = 'busy'") == len(
        by_thread
    )
    assert await statuses(pool, recent + timed_out) == ["error"] * 5 + ["timeout"] * 5


@dataclass
class HeldRetry:
    proc: PgqueueProcess
    blocker: asyncpg.Connection
    first: list[UUID]  # the 1000 runs of batches 1-20
    late: list[UUID]  # 1000 more on one thread, from batch 21 on
    before: dict[UUID, asyncpg.Record]


@asynccontextmanager
async def retry_held_in_batch_21(database_url: str, pool: asyncpg.Pool) -> AsyncIterator[HeldRetry]:
    """A bulk retry by filter, 50 runs a batch, that has committed 20 batches
    and waits inside the 21st: it updated that batch's runs, and a test's
    transaction holds their thread, which the batch marks busy last."""
    first = await seed(pool, 1000, threads=10)
    late = await seed(pool, 1000, threads=1)
    before = {r["run_id"]: r for r in await pool.fetch("SELECT run_id, seq, ended_at FROM runs")}
    blocker = await asyncpg.connect(database_url)
    await blocker.execute("BEGIN")
    await blocker.execute(
        "SELECT 1 FROM threads t JOIN runs r USING (thread_id) WHERE r.run_id = $1 FOR UPDATE OF t",
        late[0],
    )
    proc = PgqueueProcess(
        database_url, ["runs", "retry", "--status", "error", "--batch-size", "50"]
    )
    try:
        await eventually(
            lambda: pool.fetchval("SELECT count(*) = 1000 FROM runs WHERE status = 'pending'"),
            timeout=60,
            what="20 batches retried",
        )
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ),
            timeout=30,
            what="the retry to wait on the held thread",
        )
        proc.signal(signal.SIGINT)
        await eventually(
            lambda: asyncio.sleep(0, "stopping after this batch" in proc.log()),
            timeout=30,
            what="the retry to take the interrupt",
        )
        yield HeldRetry(proc, blocker, first, late, before)
    finally:
        await blocker.close()
        proc.kill()
        os.unlink(proc.log_file.name)


async def check_all_or_nothing(pool: asyncpg.Pool, held: HeldRetry, retried: set[UUID]) -> None:
    rows = await pool.fetch("SELECT run_id, seq, status, max_attempts, ended_at FROM runs")
    assert {r["run_id"] for r in rows if r["status"] == "pending"} == retried
    for r in rows:
        old = held.before[r["run_id"]]
        if r["run_id"] in retried:
            assert (r["max_attempts"], r["ended_at"]) == (4, None) and r["seq"] > old["seq"]
        else:
            assert (r["status"], r["max_attempts"]) == ("error", 3)
            assert (r["ended_at"], r["seq"]) == (old["ended_at"], old["seq"])


async def test_sigint_stops_a_bulk_retry_after_the_batch_under_way(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with retry_held_in_batch_21(database_url, pool) as held:
        await held.blocker.execute("ROLLBACK")
        code = await asyncio.to_thread(held.proc.proc.wait, 60)
        log = held.proc.log()
    assert code == 130, log
    assert "Traceback" not in log
    # The batch under way when the signal came finished; nothing after it ran.
    assert "interrupted: retried 1050 of 2000 runs; the rest are untouched" in log
    await check_all_or_nothing(pool, held, set(held.first + held.late[:50]))


async def test_a_second_sigint_stops_at_once_and_the_batch_rolls_back(
    database_url: str, pool: asyncpg.Pool
) -> None:
    async with retry_held_in_batch_21(database_url, pool) as held:
        held.proc.signal(signal.SIGINT)
        code = await asyncio.to_thread(held.proc.proc.wait, 60)
        log = held.proc.log()
        # Still held: batch 21 had updated its runs, and rolled them back.
        await check_all_or_nothing(pool, held, set(held.first))
    assert code == 130, log
    assert "Traceback" not in log
    assert "stopped: 1000 runs were done" in log


def _run_with_terminal_stderr(database_url: str, *args: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in a shell."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgqueue", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "100", "TERM": "xterm"},
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(60), seen.decode(errors="replace")


async def test_a_terminal_gets_a_progress_bar(database_url: str, pool: asyncpg.Pool) -> None:
    await seed(pool, 1000, threads=10)
    code, seen = await asyncio.to_thread(
        _run_with_terminal_stderr, database_url, "runs", "retry", "--all", "--batch-size", "100"
    )
    assert code == 0, seen
    assert "retried" in seen and "1000/1000" in seen and "━" in seen, seen
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE status = 'pending'") == 1000

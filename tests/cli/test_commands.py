"""The library's commands as a user runs them (``python -m pgqueue ...`` in a
real subprocess): demo, downgrade, sweep once and ``--loop``, and the
start-up wait for a database that never answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from tests.support.procs import GRAPHS_CONFIG, REPO, PgqueueProcess, run_cli
from tests.support.server import free_port
from tests.support.waiting import eventually


async def stale_run(pool: asyncpg.Pool) -> Any:
    """A run held by a worker that went silent 5 minutes ago."""
    worker = f"dead-{uuid7()}"
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency, heartbeat_at)"
        " VALUES ($1, 'gone', 1, 1, now() - interval '5 minutes')",
        worker,
    )
    [sub] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    [claimed] = await queue.claim(pool, worker, 1)
    assert claimed.run_id == sub.run_id
    await pool.execute(
        "UPDATE runs SET heartbeat_at = now() - interval '5 minutes' WHERE run_id = $1",
        sub.run_id,
    )
    return sub.run_id


async def status(pool: asyncpg.Pool, run_id: Any) -> str:
    return await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id)  # type: ignore[no-any-return]


async def test_demo_runs_its_runs_and_prints_the_queue(
    database_url: str, pool: asyncpg.Pool
) -> None:
    result = await asyncio.to_thread(run_cli, database_url, "demo", "--runs", "7")
    assert result.returncode == 0, result.stderr
    assert "7 runs on 3 threads finished" in result.stdout
    assert "pgqueue_queue_depth" in result.stdout
    assert "success      7" in result.stdout
    assert ": success, output {'n': 6, 'square': 36}" in result.stdout
    rows = await pool.fetch("SELECT status, output FROM runs")
    assert len(rows) == 7 and {r["status"] for r in rows} == {"success"}


async def test_downgrade_base_removes_the_schema_and_migrate_restores_it(
    database_url: str,
) -> None:
    async def tables() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        finally:
            await conn.close()
        return {r["table_name"] for r in rows}

    assert {"runs", "threads", "workers"} <= await tables()
    result = await asyncio.to_thread(run_cli, database_url, "downgrade", "base")
    assert result.returncode == 0, result.stderr
    assert "at revision None" in result.stdout
    left = await tables()
    assert not {"runs", "threads", "workers", "assistants", "run_events"} & left, left
    # A worker now refuses the schema instead of running on nothing.
    refused = await asyncio.to_thread(
        run_cli, database_url, "worker", "--handler", "tests.handlers:noop"
    )
    assert refused.returncode != 0 and "pgqueue migrate" in refused.stderr
    result = await asyncio.to_thread(run_cli, database_url, "migrate")
    assert result.returncode == 0, result.stderr
    assert {"runs", "threads", "workers"} <= await tables()


async def test_sweep_once_requeues_a_dead_workers_run(
    database_url: str, pool: asyncpg.Pool
) -> None:
    run_id = await stale_run(pool)
    [fresh] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    await queue.claim(pool, "alive", 1)  # heartbeat now: not stale
    result = await asyncio.to_thread(run_cli, database_url, "sweep")
    assert result.returncode == 0, result.stderr
    assert "requeued=1 failed=0" in result.stdout
    assert await status(pool, run_id) == "pending"
    assert await status(pool, fresh.run_id) == "running"
    # Once means once: nothing left to sweep, and the command has returned.
    again = await asyncio.to_thread(run_cli, database_url, "sweep")
    assert again.returncode == 0 and "requeued=0 failed=0" in again.stdout


async def test_sweep_loop_keeps_sweeping_until_sigterm(
    database_url: str, pool: asyncpg.Pool
) -> None:
    sweeper = PgqueueProcess(database_url, ["sweep", "--loop", "--interval", "0.2"])
    try:
        for _ in range(2):  # a second stale run, after the first pass: swept too
            run_id = await stale_run(pool)

            async def requeued(run_id: Any = run_id) -> bool:
                return await status(pool, run_id) == "pending"

            await eventually(requeued, timeout=30, what="the loop to requeue the run")
            assert sweeper.proc.poll() is None
            await pool.execute("DELETE FROM runs WHERE run_id = $1", run_id)  # done with it
        sweeper.signal(signal.SIGTERM)
        assert await asyncio.to_thread(sweeper.proc.wait, 30) == 0
        assert "Traceback" not in sweeper.log(), sweeper.log()
    finally:
        sweeper.kill()


@pytest.mark.parametrize(
    "args",
    [
        ["pgqueue", "worker", "--handler", "tests.handlers:noop"],
        ["server", "serve", "--config", str(GRAPHS_CONFIG), "--port", "0"],
        ["server", "server", "--config", str(GRAPHS_CONFIG), "--port", "0"],
    ],
    ids=["worker", "serve", "server"],
)
def test_the_start_up_wait_gives_up_with_exit_1_and_the_reason(args: list[str]) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"  # nobody listens there
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url, "PGQUEUE_STARTUP_WAIT_SECONDS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "pgqueue: the database did not answer for 1 s" in result.stderr, result.stderr
    assert "database not reachable yet" in result.stderr  # it did wait, with retries
    assert "Traceback" not in result.stderr, result.stderr

"""Sweeping by pg_cron, on a throwaway PostgreSQL 15 cluster that preloads it.

pg_cron 1.4 fires on minute boundaries, so this test waits up to ~70 s; it
runs in parallel with the rest of the suite under xdist.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db import migrate
from pgqueue.db.ids import uuid7
from tests.support import pgcluster
from tests.support.procs import run_cli
from tests.support.system import require_system

REPO = Path(__file__).resolve().parents[2]


def _require_pg_cron() -> None:
    require_system(
        pgcluster.pg15_bin_dir() is not None and pgcluster.pg_cron_available(),
        "PostgreSQL 15 server binaries and pg_cron are needed (Debian: postgresql-15-cron)",
    )


@pytest.fixture
def cron_cluster(tmp_path: Path) -> Iterator[pgcluster.PgCluster]:
    _require_pg_cron()
    cluster = pgcluster.start_cluster(
        tmp_path,
        settings={
            "shared_preload_libraries": "pg_cron",
            "cron.database_name": "pgqueue",
            "cron.use_background_workers": "on",
            "max_worker_processes": "20",
        },
        databases=["pgqueue"],
    )
    try:
        yield cluster
    finally:
        cluster.close()


async def _job_succeeded(conn: asyncpg.Connection, job: str, deadline: float) -> None:
    """Wait until pg_cron has recorded the end of a run of job ``job`` (it
    does after the command's own commit), then check that none failed."""
    details: list[asyncpg.Record] = []
    while not {d["status"] for d in details} & {"succeeded", "failed"}:
        assert time.monotonic() < deadline, f"pg_cron recorded no end of {job}: {details}"
        await asyncio.sleep(0.5)
        details = await conn.fetch(
            "SELECT d.status, d.return_message FROM cron.job_run_details d "
            "JOIN cron.job j USING (jobid) WHERE j.jobname = $1",
            job,
        )
    assert "failed" not in {d["status"] for d in details}, details


async def test_pg_cron_job_requeues_a_stale_run(cron_cluster: pgcluster.PgCluster) -> None:
    url = cron_cluster.dsn("pgqueue")
    migrate.upgrade(url)
    result = run_cli(url, "sweep", "--install-cron")
    assert result.returncode == 0, result.stderr
    assert "pgqueue-sweep" in result.stdout

    conn = await asyncpg.connect(url)
    try:
        job = await conn.fetchrow(
            "SELECT schedule, command FROM cron.job WHERE jobname = 'pgqueue-sweep'"
        )
        assert (
            job is not None and job["schedule"] == "* * * * *" and "pgqueue_sweep" in job["command"]
        )
        [sub] = await queue.submit(conn, [NewRun()])
        await queue.claim(conn, "killed-worker", 1)
        await conn.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
        deadline = time.monotonic() + 75  # next minute boundary, plus slack
        while (
            await conn.fetchval("SELECT status FROM runs WHERE run_id = $1", sub.run_id)
            != "pending"
        ):
            assert time.monotonic() < deadline, "pg_cron did not sweep within 75 s"
            await asyncio.sleep(0.5)
        # pg_cron records the run's end after the sweep committed: wait for it.
        await _job_succeeded(conn, "pgqueue-sweep", deadline)
        # Uninstalling removes the job.
        result = run_cli(url, "sweep", "--uninstall-cron")
        assert result.returncode == 0, result.stderr
        assert await conn.fetchval("SELECT count(*) FROM cron.job") == 0
    finally:
        await conn.close()


async def test_install_cron_without_pg_cron_says_what_is_missing(database_url: str) -> None:
    result = run_cli(database_url, "sweep", "--install-cron")
    assert result.returncode == 2
    assert "pg_cron" in result.stderr and "shared_preload_libraries" in result.stderr
    assert "Traceback" not in result.stderr


async def test_pg_cron_job_prunes_in_short_transactions(cron_cluster: pgcluster.PgCluster) -> None:
    url = cron_cluster.dsn("pgqueue")
    migrate.upgrade(url)
    result = run_cli(url, "prune", "--install-cron", "--run-retention-days", "2")
    assert result.returncode == 0, result.stderr
    assert "pgqueue-prune" in result.stdout and "2 days" in result.stdout

    conn = await asyncpg.connect(url)
    try:
        command = await conn.fetchval(
            "SELECT command FROM cron.job WHERE jobname = 'pgqueue-prune'"
        )
        assert command == (
            "CALL pgqueue_prune(run_retention => '2.0 days'::interval, pause_ratio => '8')"
        )
        # An old run on a thread whose newer run stays, and a stateless run
        # with events: all but the thread's newest go.
        t = uuid7()
        old, newer = await queue.submit(conn, [NewRun(thread_id=t), NewRun(thread_id=t)])
        [streamed] = await queue.submit(conn, [NewRun()])
        await conn.execute(
            "UPDATE runs SET status = 'success', ended_at = now() - interval '3 days'"
        )
        await conn.execute(
            "INSERT INTO run_events (run_id, seq, attempt, event, data) "
            "SELECT $1, s, 1, 'values', '{}' FROM generate_series(1, 3) s",
            streamed.run_id,
        )
        deadline = time.monotonic() + 75  # next minute boundary, plus slack
        while await conn.fetchval("SELECT count(*) FROM runs WHERE run_id = $1", old.run_id):
            assert time.monotonic() < deadline, "pg_cron did not prune within 75 s"
            await asyncio.sleep(0.5)
        # The procedure's COMMITs work under pg_cron: the job succeeded.
        await _job_succeeded(conn, "pgqueue-prune", deadline)
        assert {r["run_id"] for r in await conn.fetch("SELECT run_id FROM runs")} == {newer.run_id}
        assert await conn.fetchval("SELECT count(*) FROM run_events") == 0
        result = run_cli(url, "prune", "--uninstall-cron")
        assert result.returncode == 0, result.stderr
        assert await conn.fetchval("SELECT count(*) FROM cron.job") == 0
    finally:
        await conn.close()

"""/metrics against the rows: after successes, failures, retries and a
SIGKILLed worker, what the processes counted adds up to what the database
holds, and every process reports the same database gauges."""

from __future__ import annotations

import signal
import time
import uuid
from typing import Any

import asyncpg
import httpx

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.observe.database import STATUSES
from tests.support.procs import FAST, WorkerProcess, worker_process
from tests.support.scrape import METRICS_AT, Samples, scrape, total
from tests.support.server import server_process
from tests.support.waiting import eventually

CONCURRENCY = 4


def metrics_url(worker: WorkerProcess, timeout: float = 60) -> str:
    """Where a worker started with --metrics-port 0 serves, once it printed it."""
    deadline = time.monotonic() + timeout
    while (found := METRICS_AT.search(worker.log())) is None:
        assert worker.proc.poll() is None, worker.log()
        assert time.monotonic() < deadline, f"no metrics address printed:\n{worker.log()}"
        time.sleep(0.05)
    return found.group(1)


def runs(n: int, **kwargs: Any) -> list[NewRun]:
    attempts = kwargs.pop("max_attempts", 3)
    return [NewRun(thread_id=uuid.uuid4(), kwargs=kwargs, max_attempts=attempts) for _ in range(n)]


async def test_counters_and_gauges_match_the_rows(pool: asyncpg.Pool, database_url: str) -> None:
    # A worker takes a run and is killed holding it: its counters die with
    # it; the run comes back through a sweep of a surviving worker.
    [held] = await queue.submit(pool, runs(1, hold=True))
    with worker_process(database_url, "scripted", *FAST, "--no-sweep") as victim:

        async def victim_holds() -> bool:
            row = await pool.fetchrow("SELECT status FROM runs WHERE run_id = $1", held.run_id)
            return row is not None and row["status"] == "running"

        await eventually(victim_holds, timeout=60, what="the victim to claim the run")
        victim.signal(signal.SIGKILL)
        victim.proc.wait(10)

    flags = (*FAST, "--metrics-port", "0", "--concurrency", str(CONCURRENCY))
    with (
        worker_process(database_url, "scripted", *flags) as a,
        worker_process(database_url, "scripted", *flags) as b,
        server_process(database_url, command="server") as server,
    ):
        await queue.submit(
            pool,
            [
                *runs(8),  # succeed
                *runs(3, fail=99, max_attempts=1),  # fail, no retry
                *runs(3, fail=1),  # fail once, retried, succeed
                *runs(2, fail=99, max_attempts=2),  # retried once, then fail
            ],
        )

        async def settled() -> bool:
            live = await pool.fetchval(
                "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"
            )
            return live == 0

        await eventually(settled, timeout=120, interval=0.2, what="every run to end")
        urls = [metrics_url(a), metrics_url(b), server.url]
        scrapes = [scrape(url) for url in urls]
        by_status = {
            r["status"]: r["count"]
            for r in await pool.fetch("SELECT status, count(*) FROM runs GROUP BY status")
        }
        attempts = await pool.fetchval("SELECT sum(attempt) FROM runs")
        slots = await pool.fetchval("SELECT sum(concurrency) FROM pgqueue_workers WHERE alive")
        health = [httpx.get(url + "/ok", timeout=30).json() for url in urls]
        workers_log = a.log() + b.log()

    assert by_status == {"success": 12, "error": 5}
    assert await pool.fetchval("SELECT attempt FROM runs WHERE run_id = $1", held.run_id) == 2

    # The database's gauges: the same rows, whichever process is asked.
    for samples in scrapes:
        assert samples.get("pgqueue_database_up") == 1
        for status in STATUSES:
            assert samples.get("pgqueue_runs", status=status) == by_status.get(status, 0)
        assert samples.get("lg_api_num_pending_runs") == 0
        assert samples.get("lg_api_num_running_runs") == 0
        assert samples.get("pgqueue_queue_depth", state="ready") == 0
        assert samples.get("lg_api_pending_runs_wait_time_max") == 0
        assert samples.get("lg_api_workers_max") == slots == 2 * CONCURRENCY
        assert samples.get("lg_api_workers_active") == 0
        assert samples.get("lg_api_workers_available") == slots
        assert samples.get("pgqueue_stale_runs") == 0

    # The processes' own counters, summed: every outcome written...
    duration = "pgqueue_run_duration_seconds_count"
    assert total(scrapes, duration, status="success") == by_status["success"]
    swept_failed = total(scrapes, "pgqueue_swept_runs_total", outcome="failed")
    assert total(scrapes, duration, status="error") + swept_failed == by_status["error"]
    # ...every attempt after a first one was a retry or a sweep's requeue...
    requeued = total(scrapes, "pgqueue_swept_runs_total", outcome="requeued")
    assert requeued == 1
    retries = total(scrapes, "pgqueue_run_retries_total")
    assert retries == total(scrapes, duration, status="retry") == 3 + 2
    assert attempts - len(await pool.fetch("SELECT 1 FROM runs")) == retries + requeued
    # ...and every attempt was claimed, by the survivors all but the victim's.
    claimed = total(scrapes, "pgqueue_runs_claimed_total")
    assert claimed == attempts - 1
    assert total(scrapes, "pgqueue_queue_wait_seconds_count") == claimed
    assert total(scrapes, "pgqueue_claim_latency_seconds_count") == total(
        scrapes, "pgqueue_claims_total"
    )
    assert total(scrapes, "pgqueue_leases_lost_total") == 0
    assert total(scrapes, "pgqueue_sweeps_total") >= 1
    worker_scrapes: list[Samples] = scrapes[:2]
    for samples in worker_scrapes:
        assert samples.sum("pgqueue_heartbeats_total") >= 1
        assert samples.get("lg_api_pg_pool_max", pool="worker") >= 1
    assert total(worker_scrapes, "pgqueue_notifications_total", channel="pgqueue_runs") >= 1
    # The HTTP-only server ran nothing, and counted its requests by route.
    assert scrapes[2].sum(duration) == 0
    assert scrapes[2].get("lg_api_pg_pool_max", pool="http") == 20
    assert scrapes[2].sum("lg_api_http_requests_total", route="/ok", status="200") >= 1

    # /ok of each: the database, and a worker's pool (idle now).
    for report in health[:2]:
        assert report == {
            "ok": True,
            "database": {"ok": True},
            "workers": {"running": 0, "slots": CONCURRENCY},
        }
    assert health[2] == {"ok": True, "database": {"ok": True}}
    # Text logs name the run a line is about, even the handler's own lines.
    lines = [line for line in workers_log.splitlines() if "scripted attempt" in line]
    assert len(lines) == attempts - 1
    assert all(all(f" {k}=" in line for k in ("thread_id", "attempt")) for line in lines)
    assert all("[run_id=" in line for line in lines)

"""Database outages, with real processes on a throwaway PostgreSQL 15
cluster: PostgreSQL stopped (fast, then a crash) and restarted under load
while two workers and an HTTP server run; a database that stops answering
without closing anything (every server process SIGSTOPped: what a network
partition looks like); and the liveness exit of a worker, and of
``pgqueue serve``, that cannot heartbeat for longer than its lease.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from pgqueue.worker.heartbeat import EXIT_UNHEALTHY
from tests.support import pgcluster
from tests.support.procs import FAST, WorkerProcess, run_cli
from tests.support.server import ServerProcess
from tests.support.system import require_system
from tests.support.waiting import eventually

RUNS = 100
# Each run: 8 checkpointed steps, ~1 s; 2 workers x 10 slots chew through
# 100 of them in ~5 s, so each outage finds a full set in flight.
TICKS = {"until": 8, "delay": 0.1}
# FAST timings, but a lease longer than an outage lasts here: a worker that
# cannot heartbeat past its lease exits by design (the liveness tests).
RESTART_TIMING = [*FAST, "--stale-after", "15"]
LIVENESS_LEASE = "2"

# What an outage must never produce: a 500, a crashed run loop, a task
# failing unseen, a write into a closed pool.
FORBIDDEN = (
    "unhandled error in",
    "run bookkeeping failed",
    "Task exception was never retrieved",
    "PoolClosed",
    "InternalClientError",
)


def _require_pg15() -> None:
    require_system(
        pgcluster.pg15_bin_dir() is not None,
        "PostgreSQL 15 server binaries are needed (Debian: postgresql-15)",
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[pgcluster.PgCluster]:
    _require_pg15()
    cluster = pgcluster.start_cluster(tmp_path, databases=["pgqueue"])
    try:
        result = run_cli(cluster.dsn("pgqueue"), "migrate")
        assert result.returncode == 0, result.stderr
        yield cluster
    finally:
        if cluster.is_running():
            cluster.thaw()  # in case a test stopped midway through a freeze
        cluster.close()


def assert_clean(*logs: str) -> None:
    for log in logs:
        for needle in FORBIDDEN:
            assert needle not in log, f"{needle!r} in the log:\n{log[-6000:]}"


async def workers_registered(url: str, n: int) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM workers") >= n)
    finally:
        await conn.close()


async def statuses(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return dict(await conn.fetch("SELECT status, count(*) FROM runs GROUP BY status"))
    finally:
        await conn.close()


async def submit(http: httpx.AsyncClient, thread_id: Any = None, **input: Any) -> str:
    response = await http.post(
        f"/threads/{thread_id or uuid.uuid4()}/runs",
        json={"assistant_id": "ticks", "input": input or TICKS, "if_not_exists": "create"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["run_id"])


async def answers_ok(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/ok")).status_code == 200
    except httpx.TransportError:
        return False


async def assert_unavailable(http: httpx.AsyncClient, thread_id: str) -> int:
    """Every kind of request answers 503 with Retry-After while the database
    is unreachable: the liveness probe, an asyncpg read, a checkpointer
    (psycopg) read, a submission. httpx's timeout stands for a client that
    gives up: hitting it means a request hung."""
    requests = [
        http.get("/ok"),
        http.get(f"/threads/{thread_id}"),
        http.get(f"/threads/{thread_id}/state"),
        http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "ticks", "input": TICKS}),
    ]
    responses = await asyncio.gather(*requests)
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        assert response.headers.get("retry-after"), response.request.url
    return len(responses)


async def running_attempts(url: str) -> dict[Any, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT run_id, attempt FROM runs WHERE status = 'running'")
        return {r["run_id"]: r["attempt"] for r in rows}
    finally:
        await conn.close()


async def resumed(url: str, in_flight: dict[Any, int]) -> bool:
    """Every run of ``in_flight`` claimed again since (or ended)."""
    if not in_flight:
        return True
    conn = await asyncpg.connect(url)
    try:
        return bool(
            await conn.fetchval(
                "SELECT bool_and(r.attempt > i.attempt OR r.status = 'success')"
                " FROM runs r JOIN unnest($1::uuid[], $2::int[]) AS i(run_id, attempt)"
                " USING (run_id)",
                list(in_flight),
                list(in_flight.values()),
            )
        )
    finally:
        await conn.close()


async def first_claim_after(url: str, since: Any) -> float | None:
    """Seconds from ``since`` (database time) to the first claim after it."""
    conn = await asyncpg.connect(url)
    try:
        lag = await conn.fetchval(
            "SELECT extract(epoch FROM min(started_at) - $1) FROM runs WHERE started_at >= $1",
            since,
        )
        return None if lag is None else float(lag)
    finally:
        await conn.close()


async def db_now(url: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


async def test_every_run_completes_across_postgres_restarts(
    cluster: pgcluster.PgCluster,
) -> None:
    url = cluster.dsn("pgqueue")
    workers = [WorkerProcess(url, "graphs", *RESTART_TIMING) for _ in range(2)]
    server = ServerProcess(url, command="server")
    try:
        server.wait_ready()
        await eventually(lambda: workers_registered(url, 2), timeout=60, what="2 workers")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            thread_id = str(uuid.uuid4())
            run_ids = [await submit(http, thread_id)]
            run_ids += [await submit(http) for _ in range(RUNS - 1)]
            unavailable = 0
            figures: list[str] = []
            # A clean shutdown, then a crash (no checkpoint, WAL replay on
            # start), each once a share of the runs is done and more are in
            # flight.
            for mode, done_before in (("fast", RUNS // 5), ("immediate", RUNS // 2)):

                async def progressed(n: int = done_before) -> bool:
                    return (await statuses(url)).get("success", 0) >= n

                await eventually(progressed, timeout=60, interval=0.05, what=f"{done_before} done")
                in_flight = await running_attempts(url)
                cluster.stop(mode)
                unavailable += await assert_unavailable(http, thread_id)
                cluster.start()
                restarted, since = time.monotonic(), await db_now(url)
                await eventually(lambda: answers_ok(http), timeout=30, what="/ok after restart")
                server_back = time.monotonic() - restarted

                async def claimed_again(since: Any = since) -> float | None:
                    return await first_claim_after(url, since)

                worker_back = await eventually(claimed_again, timeout=30, what="a claim")

                async def all_resumed(in_flight: dict[Any, int] = in_flight) -> bool:
                    return await resumed(url, in_flight)

                # Interrupted runs wait out their retry backoff (1 s, then 2 s).
                await eventually(all_resumed, timeout=30, what="interrupted runs resumed")
                figures.append(
                    f"{mode}: {len(in_flight)} in flight; /ok 200 {server_back:.2f} s after the "
                    f"restart, first claim {worker_back:.2f} s after, every interrupted run "
                    f"resumed {time.monotonic() - restarted:.2f} s after"
                )

            async def all_done() -> bool:
                return (await statuses(url)).get("success", 0) >= RUNS

            await eventually(all_done, timeout=90, interval=0.2, what="every run done")
            # The server serves again, and a run submitted now is woken by
            # NOTIFY on the re-subscribed listener (the poll is 60 s).
            assert (await http.get(f"/threads/{thread_id}")).status_code == 200
            assert (await http.get(f"/threads/{thread_id}/state")).status_code == 200
            late = await submit(http)
            run_ids.append(late)

            async def late_done() -> bool:
                return (await statuses(url)).get("success", 0) == RUNS + 1

            await eventually(late_done, timeout=30, what="a run submitted after the restarts")

        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT status, attempt, output FROM runs WHERE run_id = ANY($1::uuid[])",
                run_ids,
            )
        finally:
            await conn.close()
        assert len(rows) == RUNS + 1
        assert {r["status"] for r in rows} == {"success"}
        # Resumed runs finished their count, not restarted it or stopped short.
        assert {json.loads(r["output"])["count"] for r in rows} == {TICKS["until"]}
        retried = sum(r["attempt"] > 1 for r in rows)
        # No worker died: an outage shorter than the lease is ridden out.
        for worker in workers:
            assert worker.proc.poll() is None, worker.log()[-6000:]
        assert server.proc.poll() is None, server.log()[-6000:]
        assert_clean(server.log(), *(w.log() for w in workers))
        print(
            f"\n{RUNS + 1} runs, all success; {retried} retried (max attempt "
            f"{max(r['attempt'] for r in rows)}); {unavailable} requests answered 503 "
            "during the outages; " + "; ".join(figures)
        )
    finally:
        for worker in workers:
            worker.close()
        server.close()


async def test_http_answers_503_while_the_database_does_not_answer(
    cluster: pgcluster.PgCluster,
) -> None:
    """Frozen, not stopped: sockets stay open and nothing answers, so only
    timeouts stand between a request and a hang."""
    url = cluster.dsn("pgqueue")
    server = ServerProcess(url, command="server")
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            thread_id = str((await http.post("/threads", json={})).json()["thread_id"])
            # Warm both pools: the requests below meet connections that
            # were live and went silent.
            assert (await http.get(f"/threads/{thread_id}/state")).status_code == 200
            cluster.freeze()
            try:
                await assert_unavailable(http, thread_id)
            finally:
                cluster.thaw()
            await eventually(lambda: answers_ok(http), timeout=30, what="/ok after thaw")
            assert (await http.get(f"/threads/{thread_id}")).status_code == 200
            assert (await http.get(f"/threads/{thread_id}/state")).status_code == 200
        assert_clean(server.log())
    finally:
        server.close()


async def test_worker_and_serve_exit_non_zero_when_heartbeats_fail_past_the_lease(
    cluster: pgcluster.PgCluster,
) -> None:
    url = cluster.dsn("pgqueue")
    lease = ["--stale-after", LIVENESS_LEASE]
    worker = WorkerProcess(url, "graphs", *FAST, *lease, "--concurrency", "1")
    serve = ServerProcess(url, *lease, "--concurrency", "1", command="serve")
    try:
        serve.wait_ready()
        await eventually(lambda: workers_registered(url, 2), timeout=60, what="2 workers")
        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
            # One run each (~6 s): both hold a lease when the database goes.
            runs = [await submit(http, until=60, delay=0.1) for _ in range(2)]

        async def both_running() -> bool:
            return (await statuses(url)).get("running", 0) == 2

        await eventually(both_running, timeout=30, what="both runs running")
        cluster.stop("immediate")
        stopped = time.monotonic()
        # Neither process hangs on the dead database, nor waits for it to
        # come back: both give up once the lease is gone, exit non-zero.
        assert worker.proc.wait(60) == EXIT_UNHEALTHY, worker.log()[-6000:]
        worker_exit = time.monotonic() - stopped
        assert serve.proc.wait(60) == EXIT_UNHEALTHY, serve.log()[-6000:]
        print(
            f"\nlease {LIVENESS_LEASE} s: worker exited {worker_exit:.1f} s after the "
            f"database went, serve {time.monotonic() - stopped:.1f} s after"
        )
        for log in (worker.log(), serve.log()):
            assert "no heartbeat for" in log and "exiting" in log, log[-6000:]
        assert_clean(worker.log(), serve.log())

        # What the supervisor does next: a worker starts again. Its sweeper
        # requeues the two orphaned runs, and they finish from their
        # checkpoints.
        cluster.start()
        worker.close()
        worker = WorkerProcess(url, "graphs", *FAST, *lease)
        conn = await asyncpg.connect(url)
        try:

            async def finished() -> bool:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) = 2 FROM runs WHERE status = 'success'"
                        " AND run_id = ANY($1::uuid[])",
                        runs,
                    )
                )

            await eventually(finished, timeout=60, interval=0.1, what="runs finished")
        finally:
            await conn.close()
    finally:
        worker.close()
        serve.close()


async def test_a_restart_with_idle_workers_costs_no_attempt(
    cluster: pgcluster.PgCluster,
) -> None:
    url = cluster.dsn("pgqueue")
    worker = WorkerProcess(url, "graphs", *RESTART_TIMING, "--concurrency", "4")
    server = ServerProcess(url, command="server")
    try:
        server.wait_ready()
        await eventually(lambda: workers_registered(url, 1), timeout=60, what="the worker")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # Leave the worker's checkpointer pool holding idle connections...
            for _ in range(8):
                await submit(http, until=2, delay=0)

            async def done(n: int) -> bool:
                return (await statuses(url)).get("success", 0) == n

            await eventually(lambda: done(8), timeout=30, what="the first runs")
            # ...that a restart kills while nothing runs.
            cluster.restart("fast")
            await eventually(lambda: answers_ok(http), timeout=30, what="/ok after restart")
            for _ in range(8):
                await submit(http, until=2, delay=0)
            await eventually(lambda: done(16), timeout=60, what="the runs after the restart")
        conn = await asyncpg.connect(url)
        try:
            attempts = [r["attempt"] for r in await conn.fetch("SELECT attempt FROM runs")]
        finally:
            await conn.close()
        assert attempts == [1] * 16
    finally:
        worker.close()
        server.close()


async def test_a_worker_and_server_started_while_the_database_is_down_wait_for_it(
    cluster: pgcluster.PgCluster,
) -> None:
    """A supervisor may start pgqueue before PostgreSQL (or during its
    restart): the processes wait, with backoff, and then serve; a SIGINT
    while one waits is a clean stop."""
    url = cluster.dsn("pgqueue")
    cluster.stop("fast")
    worker = WorkerProcess(url, "graphs", *RESTART_TIMING)
    server = ServerProcess(url, command="server")
    quitter = WorkerProcess(url, "graphs", *RESTART_TIMING)
    try:

        async def waiting(p: Any) -> bool:
            return "database not reachable yet" in p.log()

        for p in (worker, server, quitter):
            await eventually(lambda p=p: waiting(p), timeout=30, what="a wait for the database")
        quitter.proc.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(quitter.proc.wait, 30) == 0
        assert "Traceback" not in quitter.log(), quitter.log()
        assert worker.proc.poll() is None and server.proc.poll() is None
        cluster.start()
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            await submit(http, until=2, delay=0)

            async def done() -> bool:
                return (await statuses(url)).get("success", 0) == 1

            await eventually(done, timeout=60, what="the run")
        for log in (worker.log(), server.log()):
            assert "Traceback" not in log, log
        assert_clean(worker.log(), server.log())
    finally:
        quitter.close()
        worker.close()
        server.close()

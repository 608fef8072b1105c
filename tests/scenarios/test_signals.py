"""SIGTERM, the signal supervisors send (Kubernetes, systemd, docker stop):
``worker``, ``serve`` and ``server`` stop as on SIGINT and exit with status
0 (a worker draining a run on SIGTERM: test_shutdown.py, which runs its
drain tests with both signals). And the README's recovery figure as a bounded test: with tuned intervals
a SIGKILLed worker's run is finished by another worker (bench/recovery.py
measures the time; here it is a generous deadline on the outcome)."""

from __future__ import annotations

import asyncio
import signal
import uuid

import asyncpg
import httpx

from pgqueue.core import queue
from tests.execution.test_executor import NODE_RUNS
from tests.scenarios.test_shutdown import FORBIDDEN, status, status_is, submit
from tests.support.procs import FAST, WorkerProcess, worker_process
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually


def assert_clean(log: str) -> None:
    for needle in FORBIDDEN:
        assert needle not in log, f"{needle!r} in the log:\n{log}"


async def exit_status(proc: WorkerProcess | ServerProcess, timeout: float = 60) -> int:
    return await asyncio.to_thread(proc.proc.wait, timeout)


async def test_sigterm_stops_an_idle_worker_with_status_0(database_url: str) -> None:
    with worker_process(database_url, "graphs", *FAST) as worker:
        await eventually(lambda: is_registered(database_url), timeout=60, what="worker up")
        worker.signal(signal.SIGTERM)
        assert await exit_status(worker) == 0, worker.log()
        assert_clean(worker.log())


async def test_sigterm_stops_serve_with_a_run_in_flight_with_status_0(
    pool: asyncpg.Pool, database_url: str
) -> None:
    with server_process(database_url, "--shutdown-grace", "0.5") as serve:
        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
            response = await http.post(
                f"/threads/{uuid.uuid4()}/runs",
                json={
                    "assistant_id": "ticks",
                    "input": {"until": 100_000, "delay": 0.05},
                    "if_not_exists": "create",
                },
            )
            assert response.status_code == 200, response.text
            run_id = uuid.UUID(response.json()["run_id"])
        await eventually(lambda: status_is(pool, run_id, "running"), timeout=30, what="run")
        serve.signal(signal.SIGTERM)
        assert await exit_status(serve) == 0, serve.log()
        assert_clean(serve.log())
    # Handed back, not failed: the next worker resumes it.
    assert await status(pool, run_id) == "pending"


async def test_sigterm_stops_the_http_only_server_with_status_0(database_url: str) -> None:
    with server_process(database_url, command="server") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/ok")).status_code == 200
        server.signal(signal.SIGTERM)
        assert await exit_status(server) == 0, server.log()
        assert_clean(server.log())
        # It stopped listening.
        try:
            httpx.get(server.url + "/ok", timeout=2)
            listening = True
        except httpx.TransportError:
            listening = False
        assert not listening


# README: "with --heartbeat-interval 0.5 --stale-after 3 --sweep-interval 0.5
# it takes about 3 s". The figure is bench/recovery.py's; this test bounds
# the outcome with a deadline far above it, so load cannot fail it, yet a
# run left to the default 20 s lease plus a 5 s sweep (or never swept) does.
TUNED = [
    "--heartbeat-interval", "0.5",
    "--stale-after", "3",
    "--sweep-interval", "0.5",
    "--poll-interval", "60",
]  # fmt: skip


async def test_a_sigkilled_workers_run_is_finished_by_another_with_tuned_intervals(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await pool.execute(NODE_RUNS)
    with worker_process(database_url, "graphs", *TUNED) as victim:
        # Node two sleeps 600 s on the first attempt only.
        run_id = await submit(pool, "three_steps", input={"log": [], "sleep_in_two": 600})

        async def in_node_two() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'two'"))

        await eventually(in_node_two, timeout=60, what="node two")
        # The rescuer is up before the kill: what is bounded is the recovery,
        # not a process start.
        with worker_process(database_url, "graphs", *TUNED) as rescuer:
            await eventually(
                lambda: workers(pool, 2), timeout=60, what="the second worker to register"
            )
            victim.signal(signal.SIGKILL)
            victim.proc.wait(10)

            async def finished_by_rescuer() -> bool:
                row = await pool.fetchrow(
                    "SELECT status, attempt, worker_id FROM runs WHERE run_id = $1", run_id
                )
                return (
                    row["status"] == "success"
                    and row["attempt"] == 2
                    and row["worker_id"].split(":")[-2] == str(rescuer.pid)
                )

            # The bound: lease 3 s + sweep 0.5 s is about 3 s (README), and
            # the rest of the run takes milliseconds; the default lease
            # (20 s) plus a 5 s sweep could not make it.
            await eventually(
                finished_by_rescuer,
                timeout=20,
                interval=0.05,
                what="the second worker to finish the killed worker's run",
            )
            assert_clean(rescuer.log())
    run = await queue.get_run(pool, run_id)
    assert run is not None and run["output"]["log"] == ["one", "two", "three"]
    counts = dict(await pool.fetch("SELECT node, count(*) FROM node_runs GROUP BY node"))
    assert counts == {"one": 1, "two": 2, "three": 1}  # resumed, not restarted


async def workers(pool: asyncpg.Pool, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM workers") >= n  # type: ignore[no-any-return]


async def is_registered(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM workers"))
    finally:
        await conn.close()

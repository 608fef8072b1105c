"""Graceful shutdown with real processes and real signals: runs finish
inside the grace period, or are handed back with their checkpoints and
finished elsewhere; a second signal hurries; nothing is torn down under a
running graph."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.execution.graphs import system_assistant_id
from tests.execution.test_executor import NODE_RUNS
from tests.support.procs import FAST, WorkerProcess, worker_process
from tests.support.relay import Relay
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

# What a clean shutdown never logs.
FORBIDDEN = ("Traceback", "PoolClosed", "Task exception was never retrieved", "ERROR")


def assert_clean(worker: WorkerProcess) -> None:
    log = worker.log()
    for needle in FORBIDDEN:
        assert needle not in log, f"{needle!r} in the log:\n{log}"


def exits(worker: WorkerProcess, timeout: float = 30) -> int:
    return worker.proc.wait(timeout)


async def submit(pool: asyncpg.Pool, graph: str, **kwargs: Any) -> Any:
    [run] = await queue.submit(
        pool,
        [
            NewRun(
                thread_id=uuid7(),
                assistant_id=system_assistant_id(graph),
                kwargs={"graph_id": graph, **kwargs},
            )
        ],
    )
    return run.run_id


async def status(pool: asyncpg.Pool, run_id: Any) -> str:
    return await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id)  # type: ignore[no-any-return]


async def status_is(pool: asyncpg.Pool, run_id: Any, wanted: str) -> bool:
    return await status(pool, run_id) == wanted


async def submit_running(pool: asyncpg.Pool, graph: str, **kwargs: Any) -> Any:
    """Submit a run of ``graph`` and wait until a worker runs it."""
    run_id = await submit(pool, graph, **kwargs)
    await eventually(lambda: status_is(pool, run_id, "running"), timeout=30, what="run started")
    return run_id


# SIGINT (a terminal's Ctrl-C) and SIGTERM (what supervisors send:
# Kubernetes, systemd, docker stop) stop a worker the same way.
STOP_SIGNALS = pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["int", "term"])


@STOP_SIGNALS
async def test_a_run_that_finishes_inside_the_grace_period_succeeds(
    pool: asyncpg.Pool, database_url: str, stop: signal.Signals
) -> None:
    with worker_process(database_url, "graphs", *FAST, "--shutdown-grace", "30") as worker:
        run_id = await submit_running(pool, "ticks", input={"until": 15, "delay": 0.1})
        worker.signal(stop)
        assert exits(worker) == 0
        assert await status(pool, run_id) == "success"
        assert_clean(worker)
    row = await pool.fetchrow("SELECT attempt, releases FROM runs WHERE run_id = $1", run_id)
    assert (row["attempt"], row["releases"]) == (1, 0)


@STOP_SIGNALS
async def test_a_run_outliving_the_grace_period_is_handed_back_and_resumed_elsewhere(
    pool: asyncpg.Pool, database_url: str, stop: signal.Signals
) -> None:
    await pool.execute(NODE_RUNS)
    with worker_process(database_url, "graphs", *FAST, "--shutdown-grace", "1") as first:
        run_id = await submit(pool, "three_steps", input={"log": [], "sleep_in_two": 600})

        async def in_node_two() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'two'"))

        await eventually(in_node_two, timeout=30, what="node two")
        first.signal(stop)
        # Bounded: the grace and the unwinding, not node two's 600 s.
        assert exits(first) == 0
        # Back in the queue at once: no lease had to expire (no sweeper
        # runs now), and the hand-back is counted as a release below.
        assert await status(pool, run_id) == "pending"
        assert_clean(first)
    row = await pool.fetchrow("SELECT attempt, releases FROM runs WHERE run_id = $1", run_id)
    assert (row["attempt"], row["releases"]) == (1, 1)  # not counted as a failure
    with worker_process(database_url, "graphs", *FAST):
        await eventually(lambda: status_is(pool, run_id, "success"), timeout=60, what="resumed run")
    counts = dict(await pool.fetch("SELECT node, count(*) FROM node_runs GROUP BY node"))
    # Node one's checkpoint was committed: it did not run again. Node two was
    # in flight at the shutdown, so it ran twice.
    assert counts == {"one": 1, "two": 2, "three": 1}


async def test_a_second_signal_skips_the_grace_period(
    pool: asyncpg.Pool, database_url: str
) -> None:
    with worker_process(database_url, "graphs", *FAST, "--shutdown-grace", "600") as worker:
        run_id = await submit_running(pool, "ticks", input={"until": 100_000, "delay": 0.05})
        worker.signal(signal.SIGINT)

        async def draining() -> bool:
            return "draining 1 run(s)" in worker.log()

        await eventually(draining, timeout=30, what="the first signal to start the drain")
        assert worker.proc.poll() is None  # still draining: the grace is 600 s
        assert await status(pool, run_id) == "running"
        worker.signal(signal.SIGINT)
        assert exits(worker, timeout=30) == 0
        assert_clean(worker)
    assert await status(pool, run_id) == "pending"


async def hurry_a_run_that_absorbs_a_cancel(
    pool: asyncpg.Pool, database_url: str, then: str
) -> None:
    """A run whose graph absorbs its first cancel (see tests/graphs/cancels.py)
    is hurried: it still stops and is handed back, without waiting out the
    unwinding time (whose expiry logs an ERROR)."""
    with worker_process(database_url, "graphs", *FAST, "--shutdown-grace", "600") as worker:
        run_id = await submit_running(pool, "absorbs_a_cancel", input={"then": then})

        async def logged(text: str) -> bool:
            return text in worker.log()

        await eventually(lambda: logged("absorbing the next cancel"), timeout=30, what="node")
        worker.signal(signal.SIGINT)
        await eventually(lambda: logged("draining 1 run(s)"), timeout=30, what="the drain")
        worker.signal(signal.SIGINT)
        assert exits(worker, timeout=60) == 0
        assert "absorbed a cancel" in worker.log()  # the window was hit
        assert "handed back to the queue" in worker.log()
        assert_clean(worker)
    assert await status(pool, run_id) == "pending"


async def test_a_hurried_run_that_absorbed_its_cancel_and_streams_on_is_handed_back(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # Caught at the graph's next chunk.
    await hurry_a_run_that_absorbs_a_cancel(pool, database_url, "steps")


async def test_a_hurried_run_that_absorbed_its_cancel_and_waits_on_is_handed_back(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # No chunk comes: the drain cancels it again.
    await hurry_a_run_that_absorbs_a_cancel(pool, database_url, "waits")


async def test_serve_shutdown_with_a_stream_attached(pool: asyncpg.Pool, database_url: str) -> None:
    thread_id = uuid7()
    with server_process(database_url, "--shutdown-grace", "1") as serve:
        with httpx.stream(
            "POST",
            f"{serve.url}/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "ticks",
                "input": {"until": 100_000, "delay": 0.05},
                "stream_mode": "updates",
                "if_not_exists": "create",
            },
            timeout=60,
        ) as response:
            run_id = response.headers["content-location"].rsplit("/", 1)[1]
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: updates"):
                    break
            serve.signal(signal.SIGINT)
            # The stream ends (it does not hang) and what came is well formed.
            rest = list(lines)
        # The updates event whose header ended the loop above came whole:
        # its data line is the first of the rest.
        assert rest and rest[0].startswith("data:"), rest[:3]
        assert all(line == "" or line.startswith(("event:", "data:", "id:", ":")) for line in rest)
        # Every event that came before the cut is whole (no half-sent JSON).
        for line in rest:
            if line.startswith("data:"):
                json.loads(line.removeprefix("data:"))
        assert serve.proc.wait(60) == 0
        log = serve.log()
        for needle in FORBIDDEN:
            assert needle not in log, f"{needle!r} in the log:\n{log}"
    # The run went back to the queue, to be finished by the next worker.
    assert await status(pool, uuid7().__class__(run_id)) == "pending"


async def wait_for_ticks(
    pool: asyncpg.Pool, url: str, thread_id: str, until: int, delay: float
) -> asyncio.Task[Any]:
    """runs.wait through langgraph-sdk on a ticks run, in the background;
    returned once a worker runs it."""
    client = get_client(url=url, api_key=None)
    waiting = asyncio.create_task(
        client.runs.wait(
            thread_id,
            "ticks",
            input={"until": until, "delay": delay},
            if_not_exists="create",
        )
    )
    await eventually(
        lambda: run_on_thread(pool, thread_id, "running"),
        timeout=30,
        what="the run to start",
    )
    return waiting


async def run_on_thread(pool: asyncpg.Pool, thread_id: str, *statuses: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM runs WHERE thread_id = $1 AND status = ANY($2::text[])",
            uuid.UUID(thread_id),
            list(statuses),
        )
    )


async def test_a_wait_cut_by_server_shutdown_reconnects_through_location(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A client blocked in runs.wait while its HTTP server stops: the server
    keeps answering it for a while (a run ending meanwhile is answered),
    then cuts the connection without an error, and langgraph-sdk reconnects
    through the Location header to whatever serves that address next -- a
    deploy's new server -- and gets the run's result. The run is executed
    by a separate worker throughout.

    The address is a relay (a deploy's load balancer): it holds the
    client's reconnect from the moment A is told to stop until B, started
    beforehand, takes over, so the SDK's reconnect budget never meets a
    server's start-up time, and no port is reused."""
    thread_id = str(uuid7())
    # A cuts the wait 1 s after the signal, long before the run (about
    # 10 s) ends: the client must reconnect.
    env = {"PGQUEUE_WAIT_SHUTDOWN_SECONDS": "1"}
    with (
        worker_process(database_url, "graphs", *FAST),
        server_process(database_url, command="server") as b,
    ):
        async with Relay() as relay:
            a = ServerProcess(database_url, command="server", env=env)
            try:
                a.wait_ready()
                assert a.port is not None and b.port is not None
                await relay.point_at(a.port)
                waiting = await wait_for_ticks(
                    pool, relay.url, thread_id, until=20, delay=0.5
                )  # about 10 s
                await relay.hold()
                a.signal(signal.SIGINT)
                assert await asyncio.to_thread(a.proc.wait, 60) == 0
                log = a.log()
                for needle in FORBIDDEN:
                    assert needle not in log, f"{needle!r} in the log:\n{log}"
                assert "reconnect" in log  # it said why it cut the wait
                assert not waiting.done()  # the client is reconnecting, not failed
            finally:
                a.close()
            await relay.point_at(b.port)
            result = await asyncio.wait_for(waiting, 60)
    assert result == {"count": 20, "until": 20, "delay": 0.5}


async def test_a_wait_whose_run_ends_during_server_shutdown_is_answered(
    pool: asyncpg.Pool, database_url: str
) -> None:
    thread_id = str(uuid7())
    # A wide window, so a loaded machine still ends the run inside it.
    env = {"PGQUEUE_WAIT_SHUTDOWN_SECONDS": "30"}
    with worker_process(database_url, "graphs", *FAST):
        with server_process(database_url, command="server", env=env) as a:
            waiting = await wait_for_ticks(pool, a.url, thread_id, until=4, delay=0.25)  # about 1 s
            a.signal(signal.SIGINT)
            result = await asyncio.wait_for(waiting, 60)
            assert await asyncio.to_thread(a.proc.wait, 60) == 0
            log = a.log()
    assert result == {"count": 4, "until": 4, "delay": 0.25}
    for needle in (*FORBIDDEN, "reconnect"):
        assert needle not in log, f"{needle!r} in the log:\n{log}"

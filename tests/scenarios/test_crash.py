"""Real worker processes and real signals."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from tests.support.procs import FAST, LEASE_SECONDS, worker_process
from tests.support.waiting import eventually


def run_field(pool: asyncpg.Pool, run_id: Any, field: str, wanted: Any):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        return await pool.fetchval(f"SELECT {field} FROM runs WHERE run_id = $1", run_id) == wanted

    return probe


async def worker_of_running(pool: asyncpg.Pool, run_id: Any) -> str:
    """The id of the worker running the run, once it runs."""
    await eventually(run_field(pool, run_id, "status", "running"), timeout=30)
    return await pool.fetchval("SELECT worker_id FROM runs WHERE run_id = $1", run_id)


async def test_sigkilled_worker_run_is_requeued_and_finished_elsewhere(
    pool: asyncpg.Pool, database_url: str
) -> None:
    [sub] = await queue.submit(pool, [NewRun(kwargs={"sleep": 300})])
    with worker_process(database_url, "sleep_first_attempt", *FAST, "--no-sweep") as victim:
        victim_id = await worker_of_running(pool, sub.run_id)
        victim.signal(signal.SIGKILL)
        victim.proc.wait(10)
    with worker_process(database_url, "sleep_first_attempt", *FAST) as rescuer:
        await eventually(run_field(pool, sub.run_id, "status", "success"), timeout=60)
        run = await queue.get_run(pool, sub.run_id)
        assert run is not None
        assert run["attempt"] == 2 and run["output"] == {"attempt": 2}
        assert run["worker_id"] != victim_id
        # The rescuer's own attempt held its lease to the end (the log line
        # reads "lease lost for run ..."; the event name is not printed).
        assert "lease lost" not in rescuer.log()
    # The killed worker's row was swept away too.
    assert await pool.fetchval("SELECT count(*) FROM workers WHERE worker_id = $1", victim_id) == 0


async def test_a_blocked_event_loop_does_not_lose_the_lease(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # The handler blocks its event loop (time.sleep): frozen for well over
    # the lease. The heartbeat thread must keep the lease alive while a
    # sweeper (this test) keeps trying to take it.
    [sub] = await queue.submit(pool, [NewRun(kwargs={"sleep": 1.6 * LEASE_SECONDS})])
    with worker_process(database_url, "block_loop", *FAST, "--no-sweep"):
        await eventually(run_field(pool, sub.run_id, "status", "running"), timeout=30)
        requeued = 0
        deadline = time.monotonic() + 120
        while (
            await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", sub.run_id)
            == "running"
        ):
            assert time.monotonic() < deadline, "the run is still running after 120 s"
            requeued += (await queue.sweep(pool, LEASE_SECONDS)).requeued
            await asyncio.sleep(0.1)
        await eventually(run_field(pool, sub.run_id, "status", "success"), timeout=30)
    run = await queue.get_run(pool, sub.run_id)
    assert requeued == 0
    assert run is not None and run["attempt"] == 1 and run["output"] == {"attempt": 1}


async def test_frozen_worker_past_its_lease_cannot_finish_after_resuming(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    # The handler waits for this file, so the SIGSTOP lands before it can
    # finish however late it is sent.
    gate = tmp_path / "go"
    [sub] = await queue.submit(pool, [NewRun(kwargs={"gate": str(gate)})])
    with worker_process(database_url, "gated_first_attempt", *FAST, "--no-sweep") as frozen:
        frozen_id = await worker_of_running(pool, sub.run_id)
        frozen.signal(signal.SIGSTOP)
        # The lease runs out; a second worker takes over and finishes.
        with worker_process(database_url, "noop", *FAST):
            await eventually(run_field(pool, sub.run_id, "status", "success"), timeout=60)
        rescued = await queue.get_run(pool, sub.run_id)
        gate.touch()
        frozen.signal(signal.SIGCONT)

        # The thawed worker notices: its wait ends and its write of the
        # result is fenced out ("lease lost"), or, when its heartbeat thread
        # looks first (a loaded machine), it finds no beat for longer than
        # the lease and exits (the liveness exit). Either way it writes
        # nothing, which the asserts below check.
        async def reported() -> bool:
            log = frozen.log()
            return "lease lost" in log or "no heartbeat for" in log

        await eventually(reported, timeout=30)
    run = await queue.get_run(pool, sub.run_id)
    assert rescued is not None and run is not None
    assert run["worker_id"] != frozen_id and run["attempt"] == 2
    assert (run["status"], run["output"], run["ended_at"]) == ("success", None, rescued["ended_at"])

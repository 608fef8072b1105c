"""The worker in-process: wake-up by NOTIFY, delays, retries, lost leases."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.handler import Finished, finishing
from pgqueue.core.notifier import RECONNECTED, Notifier
from pgqueue.core.queue import ClaimedRun, NewRun
from pgqueue.db.ids import uuid7
from pgqueue.types import WAKE_CHANNEL
from pgqueue.worker.heartbeat import HeartbeatConfig
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.support.inprocess import running
from tests.support.waiting import eventually


def status_of(pool: asyncpg.Pool, run_id: Any, *wanted: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) in wanted

    return probe


async def test_notify_wakes_an_idle_worker_without_polling(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async def echo(run: ClaimedRun) -> Any:
        return run.kwargs

    notifier = Notifier(database_url)
    await notifier.start()
    seen: list[str] = []
    # Subscribed first, this one's LISTEN is the channel's: once it reports
    # in place (the catch-up after a first LISTEN), every NOTIFY is heard.
    notifier.subscribe(WAKE_CHANNEL, seen.append)
    # A poll of an hour: only a NOTIFY can wake it within the deadline below.
    worker = Worker(database_url, echo, WorkerConfig(poll_interval=3600), notifier=notifier)
    try:
        async with running(worker):
            # Let it go idle: the LISTEN is in place and it has claimed nothing.
            await eventually(
                lambda: _true_after(RECONNECTED in seen and worker.stats.claim_queries >= 1)
            )
            queries_before = worker.stats.claim_queries
            [sub] = await queue.submit(pool, [NewRun(kwargs={"hello": "world"})])
            await eventually(status_of(pool, sub.run_id, "success"), timeout=30)
    finally:
        await notifier.stop()
    assert "" in seen  # the submit's NOTIFY (its payload is empty)
    assert worker.stats.claim_queries - queries_before <= 3
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["output"] == {"hello": "world"}


async def _true_after(value: bool) -> bool:
    return value


async def test_a_run_submitted_before_the_workers_listen_is_in_place_is_claimed_once_it_is(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A worker's subscribe only schedules its LISTEN; its first claim goes
    out at once. A run submitted in between announces itself to nobody, so
    the worker must claim again once the LISTEN is in place, not wait for
    the poll (an hour here)."""
    notifier = Notifier(database_url)
    await notifier.start()
    ran = asyncio.Event()

    async def mark(run: ClaimedRun) -> None:
        ran.set()

    worker = Worker(database_url, mark, WorkerConfig(poll_interval=3600), notifier=notifier)
    try:
        # Every statement on the notifier's connection takes this lock:
        # holding it keeps the worker's LISTEN from running, as a slow
        # LISTEN on a loaded machine would.
        async with notifier._conn_lock:
            task = asyncio.create_task(worker.run())
            # The first claim has found nothing: the worker now sleeps.
            await eventually(lambda: _true_after(worker.stats.claim_queries >= 1))
            [sub] = await queue.submit(pool, [NewRun()])
        await asyncio.wait_for(ran.wait(), 30)
        await eventually(status_of(pool, sub.run_id, "success"))
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
        await notifier.stop()


async def test_delayed_runs_start_no_earlier_than_not_before(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async def noop(run: ClaimedRun) -> None:
        return None

    async with running(Worker(database_url, noop, WorkerConfig(poll_interval=60))):
        subs = await queue.submit(pool, [NewRun(delay=0.3), NewRun(delay=0.6), NewRun()])
        for sub in subs:
            await eventually(status_of(pool, sub.run_id, "success"), timeout=10)
    rows = await pool.fetch("SELECT started_at, not_before, created_at FROM runs")
    assert all(r["started_at"] >= r["not_before"] for r in rows)
    assert sorted((r["not_before"] - r["created_at"]).total_seconds() for r in rows)[-1] >= 0.59


async def test_retriable_failures_retry_with_backoff_then_succeed(
    pool: asyncpg.Pool, database_url: str
) -> None:
    attempts: list[int] = []

    async def flaky(run: ClaimedRun) -> str:
        attempts.append(run.attempt)
        if run.attempt < 3:
            raise ConnectionError(f"flake {run.attempt}")
        return "ok"

    config = WorkerConfig(poll_interval=60, retry_backoff_base=0.05)
    async with running(Worker(database_url, flaky, config)) as worker:
        [sub] = await queue.submit(pool, [NewRun(max_attempts=3)])
        await eventually(status_of(pool, sub.run_id, "success"), timeout=10)
    assert attempts == [1, 2, 3]
    assert worker.stats.retried == 2 and worker.stats.succeeded == 1


async def test_non_retriable_failure_errors_at_once(pool: asyncpg.Pool, database_url: str) -> None:
    async def broken(run: ClaimedRun) -> None:
        raise KeyError("missing")

    config = WorkerConfig(poll_interval=60, is_retriable=lambda exc: not isinstance(exc, KeyError))
    t = uuid7()
    async with running(Worker(database_url, broken, config)):
        [sub] = await queue.submit(pool, [NewRun(thread_id=t, max_attempts=5)])
        await eventually(status_of(pool, sub.run_id, "error"), timeout=10)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["attempt"] == 1
    assert run["error"] == {"error": "KeyError", "message": "'missing'"}
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", t) == "error"


async def test_non_json_output_is_an_error_not_a_stuck_run(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async def weird(run: ClaimedRun) -> object:
        return object()

    async with running(Worker(database_url, weird, WorkerConfig(poll_interval=60))):
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "error"), timeout=10)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["error"]["error"] == "OutputNotSerializable"


async def test_a_worker_that_lost_its_lease_cannot_finish_the_run(
    pool: asyncpg.Pool, database_url: str
) -> None:
    release = asyncio.Event()

    async def slow(run: ClaimedRun) -> str:
        await release.wait()
        return "from the old holder"

    # Heartbeat too slow to notice: the final write itself must be refused.
    config = WorkerConfig(poll_interval=60, heartbeat=HeartbeatConfig(interval=3600))
    async with running(Worker(database_url, slow, config)) as worker:
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "running"))
        # The lease expires and someone else takes the run over (in one
        # transaction, so the sweep's NOTIFY cannot make our worker win it).
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
            assert (await queue.sweep(conn, 30)).requeued == 1
            [taken] = await queue.claim(conn, "usurper", 1)
        release.set()
        await eventually(lambda: _true_after(worker.stats.lease_lost == 1))
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None
    assert (run["status"], run["worker_id"], run["attempt"], run["output"]) == (
        "running",
        "usurper",
        taken.attempt,
        None,
    )


async def test_heartbeat_noticing_a_lost_lease_cancels_the_run(
    pool: asyncpg.Pool, database_url: str
) -> None:
    cancelled = asyncio.Event()

    async def forever(run: ClaimedRun) -> None:
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            cancelled.set()
            raise

    config = WorkerConfig(poll_interval=60, heartbeat=HeartbeatConfig(interval=0.05))
    async with running(Worker(database_url, forever, config)) as worker:
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "running"))
        await pool.execute(
            "UPDATE runs SET status = 'interrupted', ended_at = now()"
        )  # e.g. a cancel
        await asyncio.wait_for(cancelled.wait(), 10)
        await eventually(lambda: _true_after(worker.stats.lease_lost == 1))
    assert await pool.fetchval("SELECT status FROM runs") == "interrupted"


async def test_a_heartbeat_after_the_handlers_own_final_write_does_not_cancel_it(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A handler that writes its outcome itself (as the graph executor does)
    announces it with finishing(); a beat landing after that write sees
    the run ended, which must not read as "taken away" and cancel the rest of
    the handler (e.g. scheduling the run's webhook)."""
    after_write = asyncio.Event()
    cancelled = False
    workers: list[Worker] = []

    async def writes_its_own_outcome(run: ClaimedRun) -> Finished:
        nonlocal cancelled
        finishing()
        done = await queue.complete(
            pool, run.worker_id, [queue.Completion(run.run_id, run.attempt, "success")]
        )
        assert done == {run.run_id: "success"}
        heartbeat = workers[0].heartbeat
        beats = heartbeat.beats
        try:
            # Several beats now find the lease no longer held (the first may
            # have started before the write).
            async def beaten() -> bool:
                return heartbeat.beats >= beats + 3

            await eventually(beaten, what="three beats after the write")
        except asyncio.CancelledError:
            cancelled = True
            raise
        after_write.set()
        return Finished("success")

    config = WorkerConfig(poll_interval=60, heartbeat=HeartbeatConfig(interval=0.05))
    async with running(Worker(database_url, writes_its_own_outcome, config)) as worker:
        workers.append(worker)
        await queue.submit(pool, [NewRun()])
        await asyncio.wait_for(after_write.wait(), 30)
        await eventually(lambda: _true_after(worker.stats.succeeded == 1))
        assert worker.stats.lease_lost == 0
    assert not cancelled
    assert await pool.fetchval("SELECT status FROM runs") == "success"


async def test_heartbeat_renews_held_leases(pool: asyncpg.Pool, database_url: str) -> None:
    gate = asyncio.Event()

    async def wait(run: ClaimedRun) -> None:
        await gate.wait()

    config = WorkerConfig(poll_interval=60, heartbeat=HeartbeatConfig(interval=0.05))
    async with running(Worker(database_url, wait, config)) as worker:
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "running"))
        await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")

        async def renewed() -> bool:
            age = await pool.fetchval("SELECT now() - heartbeat_at FROM runs")
            return age.total_seconds() < 5

        await eventually(renewed)
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM workers WHERE worker_id = $1", worker.worker_id
            )
            == 1
        )
        gate.set()
        await eventually(status_of(pool, sub.run_id, "success"))
    assert await pool.fetchval("SELECT count(*) FROM workers") == 0  # unregistered on stop


async def test_concurrency_limit_and_batched_completion(
    pool: asyncpg.Pool, database_url: str
) -> None:
    live = 0
    peak = 0

    async def track(run: ClaimedRun) -> None:
        nonlocal live, peak
        live += 1
        peak = max(peak, live)
        await asyncio.sleep(0.01)
        live -= 1

    async with running(
        Worker(database_url, track, WorkerConfig(concurrency=4, poll_interval=60))
    ) as worker:
        subs = await queue.submit(pool, [NewRun() for _ in range(200)])
        await eventually(status_of(pool, subs[-1].run_id, "success"), timeout=30)
        await eventually(lambda: _count(pool, "success", 200), timeout=30)
    assert peak == 4
    assert worker.stats.succeeded == 200


async def _count(pool: asyncpg.Pool, status: str, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM runs WHERE status = $1", status) == n


async def test_reclaiming_a_run_it_still_runs_cancels_the_stale_attempt(
    pool: asyncpg.Pool, database_url: str
) -> None:
    never = asyncio.Event()

    async def first_attempt_hangs(run: ClaimedRun) -> int:
        if run.attempt == 1:
            await never.wait()
        return run.attempt

    config = WorkerConfig(poll_interval=60, heartbeat=HeartbeatConfig(interval=3600))
    async with running(Worker(database_url, first_attempt_hangs, config)) as worker:
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "running"))
        await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
        await queue.sweep(pool, 30)  # its NOTIFY makes this same worker claim attempt 2
        await eventually(status_of(pool, sub.run_id, "success"))
        await eventually(lambda: _true_after(worker.stats.lease_lost == 1))
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and (run["attempt"], run["output"]) == (2, 2)


class _Echo:
    """A handler object with the whole contract (as the graph executor has)."""

    handles_cancel = False

    def __init__(self) -> None:
        self.ran = 0
        self.closed = 0

    async def __call__(self, run: ClaimedRun) -> dict[str, int]:
        self.ran += 1
        return {"attempt": run.attempt}

    async def aclose(self) -> None:
        self.closed += 1


async def test_a_handler_object_is_run_as_is_and_closed_once_its_runs_are_done(
    pool: asyncpg.Pool, database_url: str
) -> None:
    echo = _Echo()
    async with running(Worker(database_url, echo, WorkerConfig(poll_interval=60))) as worker:
        assert worker.handler is echo
        [sub] = await queue.submit(pool, [NewRun()])
        await eventually(status_of(pool, sub.run_id, "success"))
        assert echo.closed == 0
    assert (echo.ran, echo.closed) == (1, 1)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["output"] == {"attempt": 1}


def test_a_handler_with_only_part_of_the_contract_is_refused() -> None:
    class CloseOnly:
        async def __call__(self, run: ClaimedRun) -> None:
            return None

        async def aclose(self) -> None:
            return None

    with pytest.raises(TypeError, match="whole Handler contract"):
        Worker("postgresql://127.0.0.1/unused", CloseOnly())

"""Cancel (interrupt / rollback) from any process, and the multitask strategies."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.db.ids import uuid7
from pgqueue.errors import ThreadBusy
from tests.execution.test_executor import (
    NODE_RUNS,
    executor_worker,
    graph_run,
    start_three_steps,
    status_is,
)
from tests.support.procs import FAST, worker_process
from tests.support.waiting import eventually


@pytest.fixture(autouse=True)
def _graphs_see_the_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)


async def _in_node_two(pool: asyncpg.Pool, run_id: Any) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT count(*) FROM node_runs WHERE node = 'two' AND run_id = $1", str(run_id)
        )
    )


async def _run_checkpoints(pool: asyncpg.Pool, run_id: Any) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM checkpoints WHERE metadata->>'run_id' = $1", str(run_id)
    )


async def test_cancel_interrupt_reaches_another_process_and_keeps_checkpoints(
    pool: asyncpg.Pool, database_url: str
) -> None:
    thread, sub = await start_three_steps(pool, 300, durability="sync")
    with worker_process(database_url, "graphs", *FAST):
        await eventually(lambda: _in_node_two(pool, sub.run_id), timeout=60)
        assert await queue.cancel(pool, [sub.run_id], "interrupt") == {sub.run_id: "cancelling"}
        # Delivered by NOTIFY: nothing else stops a healthy worker's run (no
        # lease expires), and node two would sleep 300 s, far past this.
        await eventually(lambda: status_is(pool, sub.run_id, "interrupted"), timeout=60)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["output"]["log"] == ["one"]
    assert await _run_checkpoints(pool, sub.run_id) > 0
    # Stopped in mid-node: the thread can be resumed from node two.
    assert (
        await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread)
        == "interrupted"
    )
    assert await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'three'") == 0


async def test_a_cancel_the_graph_absorbed_is_delivered_again(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """The graph absorbs the cancel (see tests/graphs/cancels.py) and steps
    on: its next chunk delivers the cancel again, and the user's cancel
    ends the run as the user asked."""
    [sub] = await queue.submit(pool, [graph_run("absorbs_a_cancel", uuid7(), input={})])
    with worker_process(database_url, "graphs", *FAST) as worker:

        async def absorbing() -> bool:
            return "absorbing the next cancel" in worker.log()

        await eventually(absorbing, timeout=60, what="the node")
        assert await queue.cancel(pool, [sub.run_id], "interrupt") == {sub.run_id: "cancelling"}
        await eventually(lambda: status_is(pool, sub.run_id, "interrupted"), timeout=60)
        assert "absorbed a cancel" in worker.log()  # the window was hit
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["output"]["absorbed"] is True


async def test_cancel_rollback_deletes_the_run_and_its_checkpoints(
    pool: asyncpg.Pool, database_url: str
) -> None:
    thread, sub = await start_three_steps(pool, 300, durability="sync")
    async with executor_worker(database_url):
        await eventually(lambda: _in_node_two(pool, sub.run_id), timeout=30)
        assert await _run_checkpoints(pool, sub.run_id) > 0
        assert await queue.cancel(pool, [sub.run_id], "rollback") == {sub.run_id: "cancelling"}

        async def gone() -> bool:
            return await queue.get_run(pool, sub.run_id) is None

        await eventually(gone, timeout=30)
    assert await _run_checkpoints(pool, sub.run_id) == 0
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "idle"


async def test_cancelling_pending_runs_is_immediate(pool: asyncpg.Pool) -> None:
    t = uuid7()
    a, b = await queue.submit(pool, [graph_run("asks", t), graph_run("asks", t)])
    assert await queue.cancel(pool, [a.run_id], "interrupt") == {a.run_id: "interrupted"}
    assert await queue.cancel(pool, [b.run_id], "rollback") == {b.run_id: "deleted"}
    assert await queue.cancel(pool, [a.run_id, b.run_id], "interrupt") == {}  # neither is live now
    assert await queue.get_run(pool, b.run_id) is None
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", t) == "idle"
    with pytest.raises(ValueError, match="cancel action"):
        await queue.cancel(pool, [a.run_id], "explode")


async def test_a_cancel_for_a_dead_workers_run_is_finished_by_the_next_claimer(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    [sub] = await queue.submit(pool, [graph_run("three_steps", thread, input={"log": []})])
    await queue.claim(pool, "ghost", 1)  # a worker that then dies
    assert await queue.cancel(pool, [sub.run_id], "interrupt") == {sub.run_id: "cancelling"}
    await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
    assert (await queue.sweep(pool, 30)).requeued == 1
    async with executor_worker(database_url):
        await eventually(lambda: status_is(pool, sub.run_id, "interrupted"), timeout=30)
    assert await pool.fetchval("SELECT count(*) FROM node_runs") == 0  # nothing ran


async def test_multitask_reject(pool: asyncpg.Pool) -> None:
    t = uuid7()
    [first] = await queue.submit(pool, [graph_run("asks", t)])
    with pytest.raises(ThreadBusy, match="already running a task"):
        await queue.submit(pool, [graph_run("asks", t)], multitask_strategy="reject")
    assert [r["run_id"] for r in await pool.fetch("SELECT run_id FROM runs")] == [first.run_id]


async def test_multitask_enqueue_runs_in_order(pool: asyncpg.Pool, database_url: str) -> None:
    await pool.execute(NODE_RUNS)
    t = uuid7()
    subs = await queue.submit(
        pool,
        [graph_run("three_steps", t, input={"log": []}) for _ in range(3)],
        multitask_strategy="enqueue",
    )
    async with executor_worker(database_url):
        await eventually(lambda: status_is(pool, subs[-1].run_id, "success"), timeout=60)
    run = await queue.get_run(pool, subs[0].run_id)
    assert run is not None and run["multitask_strategy"] == "enqueue"
    rows = await pool.fetch("SELECT run_id, started_at, ended_at FROM runs ORDER BY seq")
    assert [r["run_id"] for r in rows] == [s.run_id for s in subs]
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert earlier["ended_at"] <= later["started_at"]  # one at a time, in order


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_multitask_interrupt_and_rollback(
    pool: asyncpg.Pool, database_url: str, strategy: str
) -> None:
    t, first = await start_three_steps(pool, 300, durability="sync")
    async with executor_worker(database_url):
        await eventually(lambda: _in_node_two(pool, first.run_id), timeout=30)
        [second] = await queue.submit(
            pool,
            [graph_run("three_steps", t, input={"log": ["fresh"], "sleep_in_two": 0})],
            multitask_strategy=strategy,
        )
        await eventually(lambda: status_is(pool, second.run_id, "success"), timeout=60)
    second_run = await queue.get_run(pool, second.run_id)
    assert second_run is not None
    if strategy == "interrupt":
        assert await status_is(pool, first.run_id, "interrupted")
        # The new run continued from the interrupted run's state.
        assert second_run["output"]["log"][:2] == ["one", "fresh"]
    else:
        assert await queue.get_run(pool, first.run_id) is None
        assert await _run_checkpoints(pool, first.run_id) == 0
        assert second_run["output"]["log"] == ["fresh", "one", "two", "three"]

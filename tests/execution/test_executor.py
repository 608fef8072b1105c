"""The LangGraph executor: real graphs, real PostgreSQL, real processes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import NewRun, SubmittedRun
from pgqueue.db.ids import uuid7
from pgqueue.execution.executor import ExecutorConfig, GraphExecutor, is_retriable
from pgqueue.execution.graphs import load_config, system_assistant_id
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.support.inprocess import running
from tests.support.procs import FAST, GRAPHS_CONFIG, worker_process
from tests.support.waiting import eventually

NODE_RUNS = "CREATE TABLE node_runs (run_id text, node text, attempt int, at timestamptz DEFAULT clock_timestamp())"


def graph_run(graph_id: str, thread_id: Any, **kwargs: Any) -> NewRun:
    return NewRun(thread_id=thread_id, assistant_id=system_assistant_id(graph_id), kwargs=kwargs)


async def status_is(pool: asyncpg.Pool, run_id: Any, *wanted: str) -> bool:
    return await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", run_id) in wanted


@pytest.fixture(autouse=True)
def _graphs_see_the_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/graphs nodes record side effects through DATABASE_URL, as they
    # do in worker subprocesses.
    monkeypatch.setenv("DATABASE_URL", database_url)


def executor_worker(database_url: str) -> contextlib.AbstractAsyncContextManager[Worker]:
    """An in-process worker running tests/graphs with the LangGraph executor."""
    executor = GraphExecutor(load_config(GRAPHS_CONFIG), database_url)
    config = WorkerConfig(poll_interval=60, is_retriable=is_retriable)
    return running(Worker(database_url, executor, config))


async def start_three_steps(
    pool: asyncpg.Pool, sleep_in_two: float, **kwargs: Any
) -> tuple[Any, SubmittedRun]:
    """Create the side-effect table and submit one three-step run on a new thread."""
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    [sub] = await queue.submit(pool, [three_steps(thread, sleep_in_two, **kwargs)])
    return thread, sub


def three_steps(thread: Any, sleep_in_two: float = 0, **kwargs: Any) -> NewRun:
    """The three-node graph; node two sleeps on the first attempt only."""
    return graph_run(
        "three_steps", thread, input={"log": [], "sleep_in_two": sleep_in_two}, **kwargs
    )


# What each durability mode promises after a SIGKILL inside node two:
# sync  - every step's checkpoint is committed before the next step starts;
# async - it is written while the next step runs, so committed by the time a
#         long node is killed (a crash right at a step boundary may repeat
#         the previous step);
# exit  - checkpoints are written only when the run ends: a crash repeats
#         the run from its start.
@pytest.mark.parametrize(("durability", "node_one_runs"), [("sync", 1), ("async", 1), ("exit", 2)])
async def test_sigkill_inside_node_two_resumes_elsewhere(
    pool: asyncpg.Pool, database_url: str, durability: str, node_one_runs: int
) -> None:
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    [sub] = await queue.submit(
        pool,
        [three_steps(thread, 300, durability=durability)],
    )

    async def in_node_two() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'two'"))

    async def step_one_saved() -> bool:
        return bool(
            await pool.fetchval(
                "SELECT count(*) FROM checkpoints WHERE thread_id = $1 AND metadata->>'step' = '1'",
                str(thread),
            )
        )

    with worker_process(database_url, "graphs", *FAST, "--no-sweep") as victim:
        await eventually(in_node_two, timeout=60, what="node two to start")
        if durability != "exit":
            # async writes it while node two runs: kill once it is committed
            # (a kill before that is the step boundary, where async may repeat).
            await eventually(step_one_saved, timeout=30, what="the checkpoint after node one")
        victim.signal(signal.SIGKILL)
        victim.proc.wait(10)
    with worker_process(database_url, "graphs", *FAST):
        await eventually(
            lambda: status_is(pool, sub.run_id, "success"), timeout=60, what="the run to finish"
        )
    counts = dict(await pool.fetch("SELECT node, count(*) FROM node_runs GROUP BY node"))
    # Node two was in flight at the kill, so it ran twice; node three once.
    assert counts == {"one": node_one_runs, "two": 2, "three": 1}
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["attempt"] == 2
    assert run["output"]["log"] == ["one", "two", "three"]
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "idle"


async def test_interrupt_then_resume_with_command(pool: asyncpg.Pool, database_url: str) -> None:
    thread = uuid7()
    async with executor_worker(database_url):
        [first] = await queue.submit(pool, [graph_run("asks", thread, input={"log": []})])
        # Stopping at its interrupt, the run succeeded (as on the platform,
        # where "interrupted" is a run a cancel interrupted); its thread is
        # the one interrupted.
        await eventually(lambda: status_is(pool, first.run_id, "success"), timeout=30)
        run = await queue.get_run(pool, first.run_id)
        assert run is not None
        [intr] = run["output"]["__interrupt__"]
        assert intr["value"] == {"question": "what is the answer?"} and intr["id"]
        assert (
            await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread)
            == "interrupted"
        )

        [second] = await queue.submit(pool, [graph_run("asks", thread, command={"resume": 42})])
        await eventually(lambda: status_is(pool, second.run_id, "success"), timeout=30)
    run = await queue.get_run(pool, second.run_id)
    assert run is not None and run["output"]["answer"] == 42 and run["output"]["log"] == ["asked"]
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "idle"


async def test_interrupt_before_a_node(pool: asyncpg.Pool, database_url: str) -> None:
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    async with executor_worker(database_url):
        [sub] = await queue.submit(
            pool, [graph_run("three_steps", thread, input={"log": []}, interrupt_before=["three"])]
        )
        await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=30)
        assert await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'three'") == 0
        assert (
            await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread)
            == "interrupted"
        )
        # Resuming (no input) runs the rest.
        [more] = await queue.submit(pool, [graph_run("three_steps", thread)])
        await eventually(lambda: status_is(pool, more.run_id, "success"), timeout=30)
    run = await queue.get_run(pool, more.run_id)
    assert run is not None and run["output"]["log"] == ["one", "two", "three"]


async def test_a_failing_node_fails_the_run_once_not_retried(
    pool: asyncpg.Pool, database_url: str
) -> None:
    thread = uuid7()
    async with executor_worker(database_url):
        [sub] = await queue.submit(pool, [graph_run("fails", thread, input={})])
        await eventually(lambda: status_is(pool, sub.run_id, "error"), timeout=30)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["attempt"] == 1
    assert run["error"] == {"error": "ValueError", "message": "the node failed on purpose"}
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "error"


async def test_run_timeout(pool: asyncpg.Pool, database_url: str) -> None:
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    async with executor_worker(database_url):
        [sub] = await queue.submit(
            pool,
            [three_steps(thread, 30, timeout=0.5)],
        )
        await eventually(lambda: status_is(pool, sub.run_id, "timeout"), timeout=30)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["error"]["error"] == "TimeoutError"
    assert await pool.fetchval("SELECT status FROM threads WHERE thread_id = $1", thread) == "error"


async def test_frozen_worker_writes_no_checkpoint_and_no_status_after_takeover(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    # Node two waits for this file on the first attempt, so the SIGSTOP
    # lands inside it however late it is sent.
    gate = tmp_path / "go"
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    [sub] = await queue.submit(
        pool,
        [
            graph_run(
                "three_steps",
                thread,
                input={"log": [], "gate_in_two": str(gate)},
                durability="sync",
            )
        ],
    )

    async def in_node_two() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'two'"))

    async def first_attempt_checkpoints() -> int:
        return await pool.fetchval(
            "SELECT count(*) FROM checkpoints WHERE thread_id = $1 AND metadata->>'run_attempt' = '1'",
            str(thread),
        )

    with worker_process(database_url, "graphs", *FAST, "--no-sweep") as frozen:
        await eventually(in_node_two, timeout=60, what="node two to start")
        frozen.signal(signal.SIGSTOP)
        before = await first_attempt_checkpoints()
        with worker_process(database_url, "graphs", *FAST):
            await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=60)
        finished = await queue.get_run(pool, sub.run_id)
        gate.touch()
        frozen.signal(signal.SIGCONT)  # its node two is over: it tries to go on

        # Its next checkpoint is fenced out ("lease lost"), or, when its
        # heartbeat thread looks first (a loaded machine), it finds no beat
        # for longer than the lease and exits. Either way it writes nothing,
        # which the asserts below check.
        async def gave_up() -> bool:
            log = frozen.log()
            return "lease lost" in log or "no heartbeat for" in log

        await eventually(gave_up, timeout=30, what="the thawed worker to report its lost lease")
    assert await first_attempt_checkpoints() == before
    run = await queue.get_run(pool, sub.run_id)
    assert finished is not None and run is not None
    assert (run["status"], run["attempt"], run["ended_at"], run["output"]) == (
        "success",
        2,
        finished["ended_at"],
        finished["output"],
    )


async def test_fork_from_a_checkpoint_id(pool: asyncpg.Pool, database_url: str) -> None:
    await pool.execute(NODE_RUNS)
    thread = uuid7()
    async with executor_worker(database_url):
        [first] = await queue.submit(pool, [graph_run("three_steps", thread, input={"log": []})])
        await eventually(lambda: status_is(pool, first.run_id, "success"), timeout=30)
        after_one = await pool.fetchval(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1 AND metadata->'writes' ? 'one'",
            str(thread),
        ) or await pool.fetchval(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = $1 AND (metadata->>'step')::int = 1",
            str(thread),
        )
        assert after_one is not None
        [fork] = await queue.submit(
            pool, [graph_run("three_steps", thread, checkpoint_id=after_one)]
        )
        await eventually(lambda: status_is(pool, fork.run_id, "success"), timeout=30)
    forked_nodes = [
        r["node"]
        for r in await pool.fetch(
            "SELECT node FROM node_runs WHERE run_id = $1 ORDER BY at", str(fork.run_id)
        )
    ]
    assert forked_nodes == ["two", "three"]
    run = await queue.get_run(pool, fork.run_id)
    assert run is not None and run["output"]["log"] == ["one", "two", "three"]


async def test_retriable_error_is_retried_then_succeeds(
    pool: asyncpg.Pool, database_url: str
) -> None:
    thread = uuid7()
    executor = GraphExecutor(load_config(GRAPHS_CONFIG), database_url)
    config = WorkerConfig(poll_interval=60, is_retriable=is_retriable, retry_backoff_base=0.05)
    worker = Worker(database_url, executor, config)
    task = asyncio.create_task(worker.run())
    try:
        [sub] = await queue.submit(pool, [graph_run("flaky", thread, input={"log": []})])
        await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=30)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 20)
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["attempt"] == 2 and run["output"]["log"] == ["flaky-ok"]


async def test_task_results_are_replayed_not_recomputed_after_a_crash(
    pool: asyncpg.Pool, database_url: str
) -> None:
    await pool.execute(NODE_RUNS)
    [sub] = await queue.submit(
        pool, [graph_run("with_tasks", uuid7(), input={"sleep": 300}, durability="sync")]
    )

    async def task_results_saved() -> bool:
        # Each finished @task leaves its result as a '__return__' write.
        return (
            await pool.fetchval(
                "SELECT count(*) FROM checkpoint_writes WHERE channel = '__return__'"
            )
            == 2
        )

    with worker_process(database_url, "graphs", *FAST, "--no-sweep") as victim:
        await eventually(task_results_saved, timeout=60, what="two task results to be saved")
        victim.signal(signal.SIGKILL)
        victim.proc.wait(10)
    with worker_process(database_url, "graphs", *FAST):
        await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=60)
    counts = dict(await pool.fetch("SELECT node, count(*) FROM node_runs GROUP BY node"))
    assert counts == {"task-1": 1, "task-2": 1, "task-3": 1}
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None and run["attempt"] == 2 and run["output"] == {"sum": 12}


async def test_events_are_written_as_they_come_only_for_live_streams(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A run someone streams (kwargs live_stream, set by the server) has its
    events written as they come; a background run's wait for a later flush,
    here an hour away, so they go with its end. The server's side (which
    runs it marks live) is tests/server/test_runs.py,
    test_only_streamed_runs_ask_for_their_events_at_once."""
    config = ExecutorConfig(event_flush_delay=0, background_event_flush_delay=3600)
    executor = GraphExecutor(load_config(GRAPHS_CONFIG), database_url, config)
    background, live = uuid7(), uuid7()
    async with running(Worker(database_url, executor, WorkerConfig(poll_interval=60))):
        # 200 and 1000 steps of 0.05 s: long enough to be seen running.
        [quiet, streamed] = await queue.submit(
            pool,
            [
                graph_run(
                    "ticks",
                    background,
                    live_stream=False,
                    input={"until": 200, "delay": 0.05},
                    stream_mode="updates",
                ),
                graph_run(
                    "ticks",
                    live,
                    live_stream=True,
                    input={"until": 1000, "delay": 0.05},
                    stream_mode="updates",
                ),
            ],
        )

        async def events(run_id: Any) -> int:
            return await pool.fetchval("SELECT count(*) FROM run_events WHERE run_id = $1", run_id)

        async def ticking_without_events() -> bool:
            # Three steps checkpointed, no event written; its status read
            # last, so "running" means it ran when the events were counted.
            steps = await pool.fetchval(
                "SELECT count(*) FROM checkpoints WHERE thread_id = $1", str(background)
            )
            if steps < 3:
                return False
            assert await events(quiet.run_id) == 0, "a background run's events before its end"
            return await status_is(pool, quiet.run_id, "running")

        async def events_while_running() -> bool:
            return await events(streamed.run_id) >= 3 and await status_is(
                pool, streamed.run_id, "running"
            )

        await eventually(ticking_without_events, timeout=30, what="background ticks")
        await eventually(events_while_running, timeout=30, what="live events")
        await queue.cancel(pool, [streamed.run_id], "interrupt")
        await eventually(lambda: status_is(pool, streamed.run_id, "interrupted"), timeout=30)
        await eventually(lambda: status_is(pool, quiet.run_id, "success"), timeout=60)
    # The background run's events came with its end: its 200 updates.
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM run_events WHERE run_id = $1 AND event = 'updates'", quiet.run_id
        )
        == 200
    )

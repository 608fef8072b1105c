"""Runs take a checkpointer connection per transaction, not for their life:
a worker runs more graphs at once than it has connections (README, "How it
stays correct"). Real graphs, a real worker, real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.db.ids import uuid7
from pgqueue.execution.executor import ExecutorConfig, GraphExecutor, is_retriable
from pgqueue.execution.graphs import load_config
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.execution.test_executor import NODE_RUNS, graph_run, status_is
from tests.support.inprocess import running
from tests.support.procs import GRAPHS_CONFIG
from tests.support.waiting import eventually

RUNS = 30
CONNECTIONS = 3


@pytest.fixture(autouse=True)
def _graphs_see_the_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)


async def _backends(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend'"
        )
    )


async def test_more_runs_execute_at_once_than_the_worker_has_connections(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await pool.execute(NODE_RUNS)
    gate = tmp_path / "go"
    executor = GraphExecutor(
        load_config(GRAPHS_CONFIG), database_url, ExecutorConfig(pool_size=CONNECTIONS)
    )
    settings = WorkerConfig(concurrency=RUNS, poll_interval=60, is_retriable=is_retriable)
    async with running(Worker(database_url, executor, settings)):
        subs = await queue.submit(
            pool,
            [
                # Node two waits for the gate on the first attempt: every
                # run is in the middle of its graph at once, after writing
                # node one's checkpoint.
                graph_run("three_steps", uuid7(), input={"log": [], "gate_in_two": str(gate)})
                for _ in range(RUNS)
            ],
        )

        async def all_in_node_two() -> bool:
            return await pool.fetchval("SELECT count(*) FROM node_runs WHERE node = 'two'") == RUNS

        await eventually(all_in_node_two, timeout=60, what=f"{RUNS} runs in node two")
        # Everything connected to this database (this test's pool, the
        # worker's, its LISTEN and heartbeat connections and the runs'
        # checkpointer pool) is fewer than the runs executing.
        assert await _backends(pool) < RUNS
        assert await pool.fetchval("SELECT count(*) FROM checkpoints") >= RUNS
        gate.touch()
        for sub in subs:
            await eventually(lambda s=sub: status_is(pool, s.run_id, "success"), timeout=60)
    rows = await pool.fetch("SELECT node, count(*) AS n FROM node_runs GROUP BY node")
    assert {r["node"]: r["n"] for r in rows} == {"one": RUNS, "two": RUNS, "three": RUNS}

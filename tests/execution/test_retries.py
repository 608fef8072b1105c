"""What the executor retries (README, Errors): an exception with
``retriable = True`` and a lost database connection retry the run, which
resumes from its last checkpoint. Real graphs, a real worker, real
PostgreSQL; the connection is cut by ``pg_terminate_backend`` in the middle
of the run's transaction (between two of them, the executor's pool replaces
a dead connection and the run does not notice: tests/execution/test_saver.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.execution.executor import GraphExecutor, is_retriable
from pgqueue.execution.graphs import load_config, system_assistant_id
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.execution.test_executor import NODE_RUNS, status_is
from tests.support.inprocess import running
from tests.support.procs import REPO
from tests.support.waiting import eventually

RETRIES = REPO / "tests" / "graphs" / "retries.py"


@pytest.fixture(autouse=True)
def _graphs_see_the_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "langgraph.json"
    path.write_text(json.dumps({"graphs": {"busy": f"{RETRIES}:busy", "cut": f"{RETRIES}:cut"}}))
    return path


async def run_to_the_end(
    pool: asyncpg.Pool, database_url: str, config: Path, graph: str, during: Any = None
) -> dict[str, Any]:
    await pool.execute(NODE_RUNS)
    executor = GraphExecutor(load_config(config), database_url)
    settings = WorkerConfig(poll_interval=60, is_retriable=is_retriable, retry_backoff_base=0.05)
    async with running(Worker(database_url, executor, settings)) as worker:
        [sub] = await queue.submit(
            pool,
            [
                NewRun(
                    thread_id=uuid7(),
                    assistant_id=system_assistant_id(graph),
                    kwargs={"input": {"log": []}, "durability": "sync"},
                    max_attempts=3,
                )
            ],
        )
        if during is not None:
            await during()
        try:
            await eventually(
                lambda: status_is(pool, sub.run_id, "success", "error"), timeout=60, what="the run"
            )
        except AssertionError:
            # Seen once on a loaded machine (not reproduced since): say where
            # the run was, and what the worker did, for the next time.
            row = await pool.fetchrow(
                "SELECT status, attempt, not_before, now() AS now, error FROM runs "
                "WHERE run_id = $1",
                sub.run_id,
            )
            raise AssertionError(f"run {dict(row or {})}; worker {worker.stats}") from None
    run = await queue.get_run(pool, sub.run_id)
    assert run is not None
    return run


async def node_counts(pool: asyncpg.Pool) -> dict[str, int]:
    return dict(await pool.fetch("SELECT node, count(*) FROM node_runs GROUP BY node"))


async def test_an_exception_marked_retriable_is_retried_and_the_run_resumes(
    pool: asyncpg.Pool, database_url: str, config: Path
) -> None:
    assert is_retriable(type("Marked", (Exception,), {"retriable": True})())
    run = await run_to_the_end(pool, database_url, config, "busy")
    assert run["status"] == "success", run["error"]
    assert run["attempt"] == 2
    assert run["output"]["log"] == ["before", "busy_once", "after"]
    # Resumed from the checkpoint after "before": only the failed node ran again.
    assert await node_counts(pool) == {"before": 1, "busy_once": 2, "after": 1}


# Once the graph asked for it, the next write of a node's results stalls in
# the database, where the test cuts its connection.
CUT_HERE = """
CREATE TABLE cut_requests (requested_at timestamptz DEFAULT now());
CREATE FUNCTION cut_here() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM cut_requests) THEN
        PERFORM pg_sleep(120);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER cut_here BEFORE INSERT ON checkpoint_writes
    FOR EACH STATEMENT EXECUTE FUNCTION cut_here();
"""


async def test_a_database_connection_lost_mid_transaction_is_retried_and_the_run_resumes(
    pool: asyncpg.Pool, database_url: str, config: Path
) -> None:
    await pool.execute(CUT_HERE)

    async def cut_the_runs_connection() -> None:
        pid = await eventually(
            lambda: pool.fetchval(
                "SELECT pid FROM pg_stat_activity "
                "WHERE wait_event = 'PgSleep' AND datname = current_database()"
            ),
            timeout=60,
            what="the run's write to stall",
        )
        await pool.execute("DELETE FROM cut_requests")
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)

    run = await run_to_the_end(pool, database_url, config, "cut", cut_the_runs_connection)
    assert run["status"] == "success", run["error"]
    assert run["attempt"] == 2
    assert run["output"]["log"] == ["before", "cut_once", "after"]
    # Resumed from a checkpoint: "before" is not run again. The cut write
    # was cut_once's pending writes, which LangGraph sends in the background
    # while its step's checkpoint commits on another connection; whether
    # a node after it runs again depends on where its error surfaced.
    counts = await node_counts(pool)
    assert counts["before"] == 1, counts
    assert counts["cut_once"] in (1, 2) and counts["after"] in (1, 2), counts

"""Stream events: ordered, fenced, announced, numbered across attempts
(pruning: tests/maintenance/test_pruner.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.execution.events import EventWriter
from pgqueue.execution.executor import ExecutorConfig, GraphExecutor, is_retriable
from pgqueue.execution.graphs import load_config
from pgqueue.execution.saver import FencedPostgresSaver, LeaseLost
from pgqueue.types import EVENTS_CHANNEL, Lease
from pgqueue.worker.worker import Worker, WorkerConfig
from tests.execution.test_executor import NODE_RUNS, executor_worker, graph_run, status_is
from tests.support.inprocess import running
from tests.support.procs import GRAPHS_CONFIG
from tests.support.waiting import eventually


async def test_a_run_streams_its_chunks_in_order_with_a_metadata_event_first(
    pool: asyncpg.Pool, database_url: str
) -> None:
    heard: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(EVENTS_CHANNEL, lambda *a: heard.append(a[3]))
    try:
        async with executor_worker(database_url):
            [sub] = await queue.submit(
                pool,
                [graph_run("asks", uuid7(), input={"log": []}, stream_mode=["values", "updates"])],
            )
            # It stops at its interrupt: a run that succeeded.
            await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=30)

        # The NOTIFYs are delivered after their commit: wait for the last.
        async def heard_the_end() -> bool:
            return f"{sub.run_id}:end" in heard

        await eventually(heard_the_end, what="the stream's end NOTIFY")
    finally:
        await listener.close()
    rows = await pool.fetch(
        "SELECT seq, attempt, event, data FROM run_events WHERE run_id = $1 ORDER BY seq",
        sub.run_id,
    )
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["event"] == "metadata"
    assert '"run_id": "' + str(sub.run_id) in rows[0]["data"]
    kinds = {r["event"] for r in rows[1:]}
    assert kinds == {"values", "updates"}
    assert any("__interrupt__" in r["data"] for r in rows if r["event"] == "updates")
    # Small NOTIFY payloads: run id and the last sequence written, then
    # "run_id:end" with the final status, for joiners and streams.
    assert heard[-2:] == [f"{sub.run_id}:{rows[-1]['seq']}", f"{sub.run_id}:end"]


async def test_a_failed_run_ends_its_stream_with_an_error_event(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async with executor_worker(database_url):
        [sub] = await queue.submit(pool, [graph_run("fails", uuid7(), input={})])
        await eventually(lambda: status_is(pool, sub.run_id, "error"), timeout=30)
    last = await pool.fetchrow(
        "SELECT event, data FROM run_events WHERE run_id = $1 ORDER BY seq DESC LIMIT 1", sub.run_id
    )
    assert last["event"] == "error" and "the node failed on purpose" in last["data"]


# Both ways a batch is written: in the run's psycopg transaction (fenced by
# the table's trigger, as when checkpoints go along), and alone, in one
# asyncpg statement that asserts the lease itself.
@pytest.mark.parametrize("alone", [False, True], ids=["transaction", "alone"])
async def test_event_numbering_goes_on_across_attempts_and_a_lost_lease_writes_none(
    pool: asyncpg.Pool, database_url: str, alone: bool
) -> None:
    writes = pool if alone else None
    [sub] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    [first] = await queue.claim(pool, "w1", 1)
    async with FencedPostgresSaver.for_run(
        database_url, Lease(sub.run_id, first.attempt, "w1")
    ) as saver:
        old = EventWriter(saver, pool=writes)
        await old.start()
        for i in range(3):
            old.add("custom", {"i": i})
        await old.close()
        await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
        await queue.sweep(pool, 30)
        [second] = await queue.claim(pool, "w2", 1)
        old.add("custom", {"i": "zombie"})
        with pytest.raises(LeaseLost):
            await old.close()
    async with FencedPostgresSaver.for_run(
        database_url, Lease(sub.run_id, second.attempt, "w2")
    ) as saver:
        new = EventWriter(saver, pool=writes)
        await new.start()
        new.add("custom", {"i": "after"})
        await new.close()
    rows = await pool.fetch("SELECT seq, attempt, data FROM run_events ORDER BY seq")
    assert [(r["seq"], r["attempt"]) for r in rows] == [(1, 1), (2, 1), (3, 1), (4, 2)]
    assert all("zombie" not in r["data"] for r in rows)


WITNESS = """
CREATE TABLE event_settings (lease text, synchronous_commit text);
CREATE FUNCTION witness_event_settings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_settings VALUES (
        current_setting('pgqueue.lease', true), current_setting('synchronous_commit'));
    RETURN NULL;
END $$;
CREATE TRIGGER witness AFTER INSERT ON run_events
    FOR EACH ROW EXECUTE FUNCTION witness_event_settings();
"""


@pytest.mark.parametrize("alone", [False, True], ids=["transaction", "alone"])
@pytest.mark.parametrize("synchronous_commit", ["on", "off"])
async def test_an_event_write_names_its_lease_and_commits_as_the_runs_durability_says(
    pool: asyncpg.Pool, database_url: str, alone: bool, synchronous_commit: str
) -> None:
    # What each inserted row's transaction had set when it was written: a
    # batch written alone must not lose the run's lease or its durability
    # (sync waits for the WAL flush; async and exit do not).
    await pool.execute(WITNESS)
    [sub] = await queue.submit(pool, [NewRun(thread_id=uuid7())])
    [run] = await queue.claim(pool, "w1", 1)
    lease = Lease(sub.run_id, run.attempt, "w1")
    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        saver.synchronous_commit = synchronous_commit
        writer = EventWriter(saver, pool=pool if alone else None)
        await writer.start()
        writer.add("custom", {"i": 1})
        await writer.close()
    rows = await pool.fetch("SELECT lease, synchronous_commit FROM event_settings")
    assert [tuple(r) for r in rows] == [(lease.setting(), synchronous_commit)]


def _worker(database_url: str, **config: Any) -> Any:
    executor = GraphExecutor(load_config(GRAPHS_CONFIG), database_url, ExecutorConfig(**config))
    return running(
        Worker(database_url, executor, WorkerConfig(poll_interval=60, is_retriable=is_retriable))
    )


async def test_a_background_runs_events_commit_with_its_end(
    pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody streams it (created, then joined): its events wait for the
    final transaction, here however slow the machine is."""
    monkeypatch.setenv("DATABASE_URL", database_url)  # the nodes record their runs there
    await pool.execute(NODE_RUNS)
    async with _worker(database_url, event_flush_delay=0, background_event_flush_delay=60):
        [sub] = await queue.submit(
            pool,
            [graph_run("three_steps", uuid7(), input={"log": []}, live_stream=False)],
        )
        await eventually(lambda: status_is(pool, sub.run_id, "success"), timeout=30)
    final = await pool.fetchval("SELECT xmin::text FROM runs WHERE run_id = $1", sub.run_id)
    written = await pool.fetch(
        "SELECT DISTINCT xmin::text AS tx FROM run_events WHERE run_id = $1", sub.run_id
    )
    assert [r["tx"] for r in written] == [final]
    # metadata, then the state after the input and after each of three nodes.
    assert await pool.fetchval("SELECT count(*) FROM run_events WHERE run_id = $1", sub.run_id) == 5


async def test_a_streamed_runs_events_are_written_while_it_runs(
    pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client follows it: node one's update is readable while node two is
    still sleeping, even with a background delay far longer than the run."""
    monkeypatch.setenv("DATABASE_URL", database_url)  # the nodes record their runs there
    await pool.execute(NODE_RUNS)
    async with _worker(database_url, event_flush_delay=0, background_event_flush_delay=60):
        [sub] = await queue.submit(
            pool,
            [
                graph_run(
                    "three_steps",
                    uuid7(),
                    input={"log": [], "sleep_in_two": 60},
                    stream_mode=["updates"],
                    live_stream=True,
                )
            ],
        )

        async def node_one_streamed() -> bool:
            rows = await pool.fetch(
                "SELECT event, data FROM run_events WHERE run_id = $1 ORDER BY seq", sub.run_id
            )
            return any(r["event"] == "updates" and '"one"' in r["data"] for r in rows)

        await eventually(node_one_streamed, timeout=30)
        assert await status_is(pool, sub.run_id, "running")
        await queue.cancel(pool, [sub.run_id], "interrupt")
        await eventually(lambda: status_is(pool, sub.run_id, "interrupted"), timeout=30)

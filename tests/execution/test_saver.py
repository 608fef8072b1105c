"""The fenced checkpointer: every checkpoint write commits with the lease
check, or not at all."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import operator
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

import asyncpg
import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db import migrate
from pgqueue.db.ids import uuid7
from pgqueue.execution.graphs import load_config
from pgqueue.execution.saver import (
    FencedPostgresSaver,
    LeaseLost,
    connect,
    connection_pool,
)
from pgqueue.types import Lease
from tests.execution.test_executor import NODE_RUNS
from tests.support.procs import GRAPHS_CONFIG
from tests.support.waiting import eventually


def _revision_module() -> Any:
    path = migrate.migrations_dir() / "versions" / "0002_checkpoints.py"
    spec = importlib.util.spec_from_file_location("rev_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alembic_history_covers_every_saver_migration(database_url: str) -> None:
    rev = _revision_module()
    installed = BasePostgresSaver.MIGRATIONS
    assert len(installed) == rev.SAVER_MIGRATIONS, (
        f"langgraph-checkpoint-postgres now has {len(installed)} migrations; the Alembic "
        f"history applies {rev.SAVER_MIGRATIONS}. Add a revision that applies the new ones."
    )
    fingerprint = hashlib.sha256(
        "\x00".join(installed[: rev.SAVER_MIGRATIONS]).encode()
    ).hexdigest()
    assert fingerprint == rev.SAVER_MIGRATIONS_SHA256, (
        "an already-applied saver migration changed upstream"
    )


async def test_migrated_database_needs_no_saver_setup(pool: asyncpg.Pool) -> None:
    versions = [r["v"] for r in await pool.fetch("SELECT v FROM checkpoint_migrations ORDER BY v")]
    assert versions == list(range(len(BasePostgresSaver.MIGRATIONS)))


async def _claimed_lease(pool: asyncpg.Pool, worker: str = "w1") -> tuple[Lease, Any]:
    thread = uuid7()
    await queue.submit(pool, [NewRun(thread_id=thread)])
    [run] = await queue.claim(pool, worker, 1)
    return Lease(run.run_id, run.attempt, worker), thread


def _config(thread: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": str(thread), "checkpoint_ns": ""}}


METADATA: Any = {"source": "input", "step": -1, "parents": {}}


async def test_a_write_with_the_lease_commits(pool: asyncpg.Pool, database_url: str) -> None:
    lease, thread = await _claimed_lease(pool)
    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        await saver.aput(_config(thread), empty_checkpoint(), METADATA, {})
    assert (
        await pool.fetchval("SELECT count(*) FROM checkpoints WHERE thread_id = $1", str(thread))
        == 1
    )


async def test_when_the_fence_fails_the_checkpoint_is_not_in_the_table(
    pool: asyncpg.Pool, database_url: str
) -> None:
    lease, thread = await _claimed_lease(pool)
    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        # The lease goes away (swept and taken by another worker).
        await pool.execute("UPDATE runs SET heartbeat_at = now() - interval '1 hour'")
        await queue.sweep(pool, 30)
        await queue.claim(pool, "w2", 1)
        checkpoint = empty_checkpoint()
        with pytest.raises(LeaseLost):
            await saver.aput(_config(thread), checkpoint, METADATA, {})
        config = {
            "configurable": {**_config(thread)["configurable"], "checkpoint_id": checkpoint["id"]}
        }
        with pytest.raises(LeaseLost):
            await saver.aput_writes(config, [("x", 1)], task_id="t1")
        # The connection is usable afterwards (the transaction rolled back).
        assert await saver.aget_tuple(_config(thread)) is None
    for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    run = await pool.fetchrow("SELECT worker_id, attempt FROM runs")
    assert (run["worker_id"], run["attempt"]) == ("w2", 2)


class State(TypedDict):
    log: Annotated[list[str], operator.add]


async def test_a_graph_stops_writing_the_moment_its_lease_is_gone(
    pool: asyncpg.Pool, database_url: str
) -> None:
    lease, thread = await _claimed_lease(pool)

    async def first(state: State) -> dict[str, list[str]]:
        return {"log": ["first"]}

    async def second(state: State) -> dict[str, list[str]]:
        # Mid-run, another process sweeps the run away from us.
        await pool.execute("UPDATE runs SET status = 'pending', worker_id = NULL")
        return {"log": ["second"]}

    async def third(state: State) -> dict[str, list[str]]:
        raise AssertionError("must not run after the lease was lost")

    builder = StateGraph(State)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_node("third", third)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", "third")
    builder.add_edge("third", END)

    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        graph = builder.compile(checkpointer=saver)
        with pytest.raises(LeaseLost):
            await graph.ainvoke({"log": []}, _config(thread), durability="sync")
        state = await graph.aget_state(_config(thread))
    # The last checkpoint is the one after "first": nothing from "second" on.
    assert state.values["log"] == ["first"]
    assert state.next == ("second",)
    writes = await pool.fetchval(
        "SELECT count(*) FROM checkpoint_writes WHERE thread_id = $1 AND task_path LIKE '%second%'",
        str(thread),
    )
    assert writes == 0


async def test_a_fenced_write_is_one_round_trip(
    pool: asyncpg.Pool, database_url: str, tmp_path: Any
) -> None:
    """Fencing must not add round trips or statements: one ReadyForQuery per
    saver write, as for the stock saver."""
    from psycopg.pq import Trace

    lease, thread = await _claimed_lease(pool)
    trace = tmp_path / "trace.txt"
    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        conn = saver.conn
        with trace.open("w") as f:
            conn.pgconn.trace(f.fileno())  # type: ignore[union-attr]
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)  # type: ignore[union-attr]
            await saver.aput(_config(thread), empty_checkpoint(), METADATA, {})
            conn.pgconn.untrace()  # type: ignore[union-attr]
    lines = trace.read_text().splitlines()
    assert sum(1 for line in lines if "\tReadyForQuery" in line) == 1
    # The fence runs inside the saver's own statements (a trigger): the
    # client sends nothing extra.
    assert not any("pgqueue_assert_lease" in line for line in lines)


# -- group commit (durability async/exit) ------------------------------------


@pytest.fixture
async def connections(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """The executor's kind of checkpointer pool, one connection."""
    pool = connection_pool(database_url, 1)
    await pool.open()
    try:
        yield pool
    finally:
        await pool.close()


async def _checkpoints(pool: asyncpg.Pool, thread: Any) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM checkpoints WHERE thread_id = $1", str(thread))
    )


async def _put(saver: FencedPostgresSaver, thread: Any, step: int) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"log": [f"step {step}"]}  # a blob, as real state is
    checkpoint["channel_versions"] = {"log": str(step + 2)}
    metadata: Any = {"source": "loop", "step": step, "parents": {}}
    return await saver.aput(_config(thread), checkpoint, metadata, {"log": str(step + 2)})


async def test_group_commit_sends_a_runs_writes_as_one_transaction(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any], tmp_path: Any
) -> None:
    from psycopg.pq import Trace

    lease, thread = await _claimed_lease(pool)
    trace = tmp_path / "trace.txt"
    # The pool's one connection, traced while the saver takes it.
    async with connections.connection() as conn:
        traced = conn
    with trace.open("w") as f:
        traced.pgconn.trace(f.fileno())
        traced.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        # A delay longer than the test: only an explicit flush sends.
        async with FencedPostgresSaver.from_pool(
            connections, lease, wait_for_flush=False, flush_delay=60
        ) as saver:
            config = await _put(saver, thread, -1)
            await saver.aput_writes(config, [("log", ["x"])], task_id="t1")
            await _put(saver, thread, 0)
            assert await _checkpoints(pool, thread) == 0  # recorded, not sent
            await saver.flush()
            traced.pgconn.untrace()
        assert await _checkpoints(pool, thread) == 2
        assert await pool.fetchval("SELECT count(*) FROM checkpoint_writes") == 1
    # Three writes, one round trip, on the pool's connection.
    assert trace.read_text().count("\tReadyForQuery") == 1


async def test_group_commit_flushes_on_its_own_within_the_delay(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any]
) -> None:
    lease, thread = await _claimed_lease(pool)
    async with FencedPostgresSaver.from_pool(connections, lease, flush_delay=0.05) as saver:
        await _put(saver, thread, -1)
        for _ in range(200):
            if await _checkpoints(pool, thread):
                break
            await asyncio.sleep(0.02)
        assert await _checkpoints(pool, thread) == 1
        # A read sees what is recorded: it goes first, in the read's round trip.
        await _put(saver, thread, 0)
        latest = await saver.aget_tuple(_config(thread))
        assert latest is not None and latest.metadata["step"] == 0
        # Leaving the block commits whatever is still recorded.
        await _put(saver, thread, 1)
    assert await _checkpoints(pool, thread) == 3


async def test_a_fenced_out_group_commit_fails_every_later_write(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any]
) -> None:
    lease, thread = await _claimed_lease(pool)
    async with FencedPostgresSaver.from_pool(connections, lease, flush_delay=60) as saver:
        await _put(saver, thread, -1)
        # The lease goes away before the recorded checkpoint is sent.
        await pool.execute("UPDATE runs SET status = 'pending', worker_id = NULL")
        with pytest.raises(LeaseLost):
            await saver.flush()
        # Its statements are gone: the run must not go on as if committed.
        with pytest.raises(LeaseLost):
            await _put(saver, thread, 0)
        with pytest.raises(LeaseLost):
            await saver.aput_writes(_config(thread), [("log", ["x"])], task_id="t1")
        # Reads still work, and show that nothing committed.
        assert await saver.aget_tuple(_config(thread)) is None
    for table in ("checkpoints", "checkpoint_writes", "checkpoint_blobs"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_a_pooled_connection_the_server_closed_is_replaced_on_checkout(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any]
) -> None:
    """The checkout check costs no round trip on a healthy connection, yet a
    connection whose backend went away (a restart, an admin's terminate) is
    replaced instead of failing the run that takes it."""
    async with connections.connection() as conn:
        pid = conn.info.backend_pid
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)

    async def backend_gone() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)

    await eventually(backend_gone, timeout=30, what="the terminated backend to go")
    async with connections.connection() as conn:
        assert conn.info.backend_pid != pid
        assert (await (await conn.execute("SELECT 1 AS one")).fetchone()) == {"one": 1}


async def test_a_background_flush_that_fails_reaches_the_run(
    pool: asyncpg.Pool, database_url: str
) -> None:
    lease, thread = await _claimed_lease(pool)
    # A saver with a connection of its own: cut, it is not replaced.
    async with FencedPostgresSaver.for_run(database_url, lease) as saver:
        saver.defer_writes, saver.flush_delay = True, 0.2
        await _put(saver, thread, -1)  # recorded; flushed in 0.2 s
        conn = saver.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", conn.info.backend_pid)

        async def flush_failed() -> bool:
            return saver._failed is not None

        await eventually(flush_failed, what="the background flush to run and fail")
        with pytest.raises(psycopg.OperationalError):
            await _put(saver, thread, 0)
        with pytest.raises(psycopg.OperationalError):
            await saver.stop_flushing()
    assert await _checkpoints(pool, thread) == 0


async def test_a_run_holds_no_connection_between_its_writes(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any]
) -> None:
    """A pooled saver takes a connection per transaction: two runs share
    the pool's one connection, and a connection cut between two writes is
    replaced before the next one, which the run does not notice."""
    first, thread = await _claimed_lease(pool)
    second, other = await _claimed_lease(pool)
    async with (
        FencedPostgresSaver.from_pool(connections, first) as a,
        FencedPostgresSaver.from_pool(connections, second) as b,
    ):
        await _put(a, thread, -1)
        await _put(b, other, -1)
        async with connections.connection() as conn:
            pid = conn.info.backend_pid
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        await eventually(lambda: _gone(pool, pid), timeout=30, what="the terminated backend to go")
        await _put(a, thread, 0)
        await _put(b, other, 0)
        # Each write was fenced by its own run's lease, on the shared connection.
        await pool.execute(
            "UPDATE runs SET status = 'pending', worker_id = NULL WHERE run_id = $1", second.run_id
        )
        with pytest.raises(LeaseLost):
            await _put(b, other, 1)
        await _put(a, thread, 1)
    assert await _checkpoints(pool, thread) == 3
    assert await _checkpoints(pool, other) == 2


async def _gone(pool: asyncpg.Pool, pid: int) -> bool:
    return not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)


async def test_a_write_after_the_run_released_its_connection_goes_nowhere(
    pool: asyncpg.Pool, connections: AsyncConnectionPool[Any]
) -> None:
    """LangGraph may still call the saver from a background checkpoint task
    after the run is over and its connection is back in the pool (serving
    another run, or closed): that write must fail there and then, not
    schedule a flush onto a connection that is no longer the run's."""
    import gc

    lease, thread = await _claimed_lease(pool)
    unhandled: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        async with FencedPostgresSaver.from_pool(connections, lease, flush_delay=0.01) as saver:
            await _put(saver, thread, -1)
        with pytest.raises(psycopg.OperationalError, match="released"):
            await _put(saver, thread, 0)

        # A flush the straggling write scheduled (there must be none) has
        # had its delay and has written or failed before the checks below.
        async def no_flush_pending() -> bool:
            return not [
                t
                for t in asyncio.all_tasks()
                if not t.done() and "_flush_later" in t.get_coro().__qualname__  # type: ignore[union-attr]
            ]

        await eventually(no_flush_pending, what="every scheduled flush to end")
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert unhandled == []
    assert await _checkpoints(pool, thread) == 1


# -- serialization on the event loop's thread ---------------------------------


class _ThreadNoting(JsonPlusSerializer):
    """A serializer that notes which threads it ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        self.threads.add(threading.get_ident())
        return super().dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        self.threads.add(threading.get_ident())
        return super().loads_typed(data)


async def test_a_runs_saver_serializes_inline_and_other_savers_keep_their_thread(
    pool: asyncpg.Pool, database_url: str
) -> None:
    lease, thread = await _claimed_lease(pool)
    ours = _ThreadNoting()
    async with await connect(database_url, lease) as conn:
        saver = FencedPostgresSaver(conn, lease, serde=ours)
        config = await _put(saver, thread, -1)
        await saver.aput_writes(config, [("log", ["x"])], task_id="t1")
        got = await saver.aget_tuple(_config(thread))
    assert got is not None
    assert got.checkpoint["channel_values"] == {"log": ["step -1"]}
    assert got.pending_writes == [("t1", "log", ["x"])]
    assert ours.threads == {threading.get_ident()}

    # A plain AsyncPostgresSaver in the same process still hands (some of)
    # its deserializing to a thread, as langgraph-checkpoint-postgres does.
    theirs = _ThreadNoting()
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        plain = AsyncPostgresSaver(conn, serde=theirs)
        assert (await plain.aget_tuple(_config(thread))) is not None
    assert theirs.threads - {threading.get_ident()}


# -- the run's closing state, from the checkpoint it just put -----------------


def _snapshot(state: Any) -> dict[str, Any]:
    """What a StateSnapshot says, in comparable form."""
    return {
        "values": state.values,
        "next": state.next,
        "config": state.config,
        "parent_config": state.parent_config,
        "metadata": state.metadata,
        "created_at": state.created_at,
        "interrupts": [(i.id, i.value) for i in state.interrupts],
        "tasks": [(t.id, t.name, [(i.id, i.value) for i in t.interrupts]) for t in state.tasks],
    }


@pytest.mark.parametrize(
    ("graph_id", "graph_input", "options", "served"),
    [
        ("echo", {"count": 1}, {}, True),
        ("ticks", {"until": 3}, {"durability": "sync"}, True),
        ("ticks", {"until": 3}, {"durability": "exit"}, True),
        ("chat", {"messages": [{"role": "user", "content": "hi"}]}, {}, True),
        ("with_tasks", {}, {}, True),
        # A static breakpoint: next is set, nothing written after the checkpoint.
        ("three_steps", {"log": []}, {"interrupt_before": ["two"]}, True),
        # interrupt(): the checkpoint has pending writes, read back from the table.
        ("asks", {"log": []}, {}, False),
    ],
)
async def test_a_runs_closing_state_from_memory_is_the_stored_one(
    pool: asyncpg.Pool,
    connections: AsyncConnectionPool[Any],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    graph_id: str,
    graph_input: dict[str, Any],
    options: dict[str, Any],
    served: bool,
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)  # nodes that record their runs
    await pool.execute(NODE_RUNS)
    graph = load_config(GRAPHS_CONFIG).get(graph_id)
    lease, thread = await _claimed_lease(pool)
    config = _config(thread)
    async with FencedPostgresSaver.from_pool(
        connections, lease, wait_for_flush=False, flush_delay=60
    ) as saver:
        saver.remember_latest = True
        mine = graph.copy(update={"checkpointer": saver})
        async for _ in mine.astream(graph_input, config, **options):  # type: ignore[arg-type]
            pass
        kept = saver._latest is not None and saver._latest.checkpoint["id"] not in saver._written
        ours = _snapshot(await mine.aget_state(config))
    assert kept is served
    # The same state, read from the tables by a plain saver once the run's
    # writes committed (leaving from_pool flushes them).
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        plain = graph.copy(update={"checkpointer": AsyncPostgresSaver(conn)})
        stored = _snapshot(await plain.aget_state(config))
    assert ours == stored

"""LangGraph's Postgres checkpointer, fenced by the run's lease.

One saver per executing run, bound to its lease. Each of the run's
transactions names that lease first, in the transaction-local setting
``pgqueue.lease``, and a statement-level trigger on the checkpoint and event
tables (``pgqueue_fence``, migration 0002) asserts it inside every statement
that writes them, so each write the saver makes (``aput``, ``aput_writes``,
``adelete_thread``) commits together with the lease check, or not at all,
with no extra round trip: the transaction is one pipeline, and the trigger's
error (SQLSTATE PGQ01) aborts all of it. The saver takes a connection from
the executor's pool for each transaction (``from_pool``), or has one of its
own (``for_run``).
A worker that was swept, cancelled or frozen past its lease therefore can
never add a checkpoint behind the back of the worker that took over.

Where the rest lives: the run's transactions and group commit (writes
recorded, then sent together in one fenced transaction, for durability
``async`` and ``exit``) in ``group_commit``, which this class extends;
serialization inline, on the event loop's thread, in ``inline_serde``.
This module adds where the connections come from (``connect``,
``connection_pool``, ``from_pool``, ``for_run``) and the run's own latest
checkpoint.

The run's own latest checkpoint. A run ends with LangGraph reading back the
checkpoint it has just written (``aget_state``), which costs a round trip
and the deserializing of every channel. With ``remember_latest`` (set by
the executor for graphs without delta channels, whose values a checkpoint
alone does not hold), the saver answers that read from the checkpoint its
last root ``aput`` was given, unless the run put writes for that checkpoint
(pending writes are read back from the table) or a flush failed. Nobody
else writes the thread meanwhile: the run holds its lease.

The saver's ``asyncio.Lock`` is not re-entrant; this class takes it exactly
where the parent does.
"""

from __future__ import annotations

import asyncio
import contextvars
import select
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from pgqueue.db import pools as db
from pgqueue.db import psycopg_sql
from pgqueue.db.sql import queries
from pgqueue.errors import LeaseLost
from pgqueue.execution.group_commit import GroupCommitSaver
from pgqueue.execution.inline_serde import inline_serde
from pgqueue.types import Lease


def _namespace(config: RunnableConfig) -> str:
    return str(config["configurable"].get("checkpoint_ns", ""))


async def connect(dsn: str, lease: Lease | None = None) -> AsyncConnection[DictRow]:
    """A connection as the saver's own ``from_conn_string`` makes it:
    autocommit (each pipeline is one implicit transaction), dict rows, and
    statements prepared on first use (``prepare_threshold=0``). With a lease,
    every checkpoint or event write on it is fenced by that lease."""
    conn = await AsyncConnection.connect(
        dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row
    )
    if lease is not None:
        value = lease.setting()
        await psycopg_sql.execute(conn, queries.set_lease, value)
    return conn


class FencedPostgresSaver(GroupCommitSaver):
    """The checkpointer a run's graph gets: see the module doc."""

    def __init__(
        self,
        conn: AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]],
        lease: Lease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(conn, lease, serde=serde)
        # See "The run's own latest checkpoint" in the module doc.
        self.remember_latest = False
        self._latest: CheckpointTuple | None = None
        # Root checkpoints this run put writes for.
        self._written: set[str] = set()

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        with self._recording(), inline_serde():
            saved = await super().aput(config, checkpoint, metadata, new_versions)
        if _namespace(config) == "":
            self._latest = None
            if self.remember_latest:
                parent = config["configurable"].get("checkpoint_id")
                self._latest = CheckpointTuple(
                    saved,
                    checkpoint,
                    get_checkpoint_metadata(config, metadata),
                    {"configurable": {**saved["configurable"], "checkpoint_id": parent}}
                    if parent
                    else None,
                    [],
                )
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if _namespace(config) == "":
            # That checkpoint has pending writes: read it back with them.
            # (By id, not by order: LangGraph may put a step's writes before
            # the checkpoint they belong to.)
            self._written.add(str(config["configurable"].get("checkpoint_id")))
        with self._recording(), inline_serde():
            await super().aput_writes(config, writes, task_id, task_path)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        latest = self._latest
        if (
            latest is not None
            and latest.checkpoint["id"] not in self._written
            and self._failed is None
            and _namespace(config) == ""
            and not get_checkpoint_id(config)
            and config["configurable"]["thread_id"] == latest.config["configurable"]["thread_id"]
        ):
            return latest
        with inline_serde():
            return await super().aget_tuple(config)

    def discard_deferred(self) -> None:
        super().discard_deferred()
        self._latest = None

    @classmethod
    @asynccontextmanager
    async def for_run(cls, dsn: str, lease: Lease) -> AsyncIterator[FencedPostgresSaver]:
        async with await connect(dsn, lease) as conn:
            yield cls(conn, lease)

    @classmethod
    @asynccontextmanager
    async def from_pool(
        cls,
        pool: AsyncConnectionPool[AsyncConnection[DictRow]],
        lease: Lease,
        *,
        wait_for_flush: bool = True,
        flush_delay: float | None = None,
    ) -> AsyncIterator[FencedPostgresSaver]:
        """A saver whose transactions and reads each take a connection from
        ``pool`` (connecting costs 10-20 ms here, more than a whole run of a
        small graph). ``wait_for_flush`` False: checkpoint commits do not
        wait for the WAL flush (see bind_transaction). ``flush_delay`` not
        None: group commit (see ``group_commit``).

        On the way out, checkpoints still recorded are committed (a run
        stopped by a retriable error or handed back at shutdown keeps its
        progress; fenced, so a lost lease writes nothing); after that the
        saver writes nothing more."""
        saver = cls(pool, lease)
        saver.synchronous_commit = "on" if wait_for_flush else "off"
        if flush_delay is not None:
            saver.defer_writes = True
            saver.flush_delay = flush_delay
        try:
            yield saver
        finally:
            try:
                await saver._settle()
            finally:
                saver._released = True


def connection_pool(dsn: str, max_size: int) -> AsyncConnectionPool[AsyncConnection[DictRow]]:
    """Connections configured as ``connect`` makes them, for ``from_pool``.
    Opened by the caller (``await pool.open()``)."""
    return AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        # Checked on checkout: after a database restart an idle connection
        # is replaced instead of failing, and costing an attempt of, the
        # next run that takes it.
        check=_check_idle_connection,
    )


class RunConnections:
    """An executor's connections for its runs, opened on first use: a
    psycopg pool for checkpoints (``from_pool``) and an asyncpg pool for
    event batches that go alone (``EventWriter``), each at most ``size``."""

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._size = size
        self._checkpoints: AsyncConnectionPool[AsyncConnection[DictRow]] | None = None
        self.events: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def checkpoints(self) -> AsyncConnectionPool[AsyncConnection[DictRow]]:
        async with self._lock:
            if self._checkpoints is None:
                pool = connection_pool(self._dsn, self._size)
                # Opened in a context of its own: its tasks serve every run,
                # and their log lines must not name the first one's.
                await asyncio.create_task(pool.open(), context=contextvars.Context())
                self._checkpoints = pool
            if self.events is None:
                # No connection made now: one made on first need fails
                # inside the event write, where a database that is away
                # makes the run retriable, not failed.
                self.events = await db.create_pool(
                    self._dsn, min_size=0, max_size=self._size, name="events"
                )
        return self._checkpoints

    async def aclose(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.close()
            self._checkpoints = None
        if self.events is not None:
            await db.close_pool(self.events)
            self.events = None


async def _check_idle_connection(conn: AsyncConnection[Any]) -> None:
    """A pool's checkout check without a round trip in the usual case: an
    idle connection has nothing to read, so a readable socket means the
    server said something -- most often that it is going away (a restart
    closes it) -- and only then is the connection really tried."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


__all__ = ["FencedPostgresSaver", "LeaseLost", "RunConnections", "connect"]

"""LangGraph's Postgres checkpointer, fenced by the run's lease.

One saver per executing run, bound to that run's own psycopg connection,
which names its lease in the session setting ``pgqueue.lease``. A
statement-level trigger on the checkpoint tables (``pgqueue_fence``,
migration 0002) asserts that lease inside every statement that writes them,
so each write the saver makes (``aput``, ``aput_writes``, ``adelete_thread``)
commits together with the lease check, or not at all, with no extra
statement and no extra round trip: the saver's own pipeline is one implicit
transaction, and the trigger's error (SQLSTATE PGQ01) aborts all of it.
A worker that was swept, cancelled or frozen past its lease therefore can
never add a checkpoint behind the back of the worker that took over.

Reads go through the saver unchanged. The saver's ``asyncio.Lock`` is not
re-entrant; this class takes it exactly where the parent does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from pgqueue.errors import LeaseLost, fenced
from pgqueue.sql import queries


@dataclass(frozen=True)
class RunLease:
    run_id: UUID
    attempt: int
    worker_id: str


async def connect(dsn: str, lease: RunLease | None = None) -> AsyncConnection[DictRow]:
    """A connection as the saver's own ``from_conn_string`` makes it:
    autocommit (each pipeline is one implicit transaction), dict rows, and
    statements prepared on first use (``prepare_threshold=0``). With a lease,
    every checkpoint or event write on it is fenced by that lease."""
    conn = await AsyncConnection.connect(
        dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row
    )
    if lease is not None:
        value = f"{lease.run_id}:{lease.attempt}:{lease.worker_id}"
        await conn.execute(queries.set_lease_psycopg, (value,))
    return conn


class FencedPostgresSaver(AsyncPostgresSaver):
    def __init__(
        self,
        conn: AsyncConnection[DictRow],
        lease: RunLease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self.lease = lease

    async def bind(self, lease: RunLease) -> None:
        """Point this saver and its connection at another lease (a connection
        reused for the next run)."""
        conn = self.conn
        assert isinstance(conn, AsyncConnection)
        async with self.lock:
            await conn.execute(
                queries.set_lease_psycopg, (f"{lease.run_id}:{lease.attempt}:{lease.worker_id}",)
            )
        self.lease = lease

    @classmethod
    @asynccontextmanager
    async def for_run(cls, dsn: str, lease: RunLease) -> AsyncIterator[FencedPostgresSaver]:
        async with await connect(dsn, lease) as conn:
            yield cls(conn, lease)

    @classmethod
    @asynccontextmanager
    async def from_pool(
        cls,
        pool: AsyncConnectionPool[AsyncConnection[DictRow]],
        lease: RunLease,
        *,
        wait_for_flush: bool = True,
    ) -> AsyncIterator[FencedPostgresSaver]:
        """A saver on a pooled connection, named for ``lease`` while the run
        holds it. Connecting costs 10-20 ms here, more than a whole run of a
        small graph; the next run on the connection names its own lease
        before it writes anything. ``wait_for_flush`` False: checkpoint
        commits do not wait for the WAL flush (see bind_run_psycopg)."""
        async with pool.connection() as conn:
            await conn.execute(
                queries.bind_run_psycopg,
                (
                    f"{lease.run_id}:{lease.attempt}:{lease.worker_id}",
                    "on" if wait_for_flush else "off",
                ),
            )
            yield cls(conn, lease)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        # The parent asks for pipeline=True on exactly its write paths.
        if not pipeline:
            async with super()._cursor(pipeline=False) as cur:
                yield cur
            return
        conn = self.conn
        assert isinstance(conn, AsyncConnection)
        lease = self.lease
        # No conn.transaction() here: inside a pipeline psycopg syncs at BEGIN
        # and again at COMMIT (about 4 round trips per write). What the
        # pipeline sends up to its one Sync already runs as a single implicit
        # transaction, and the fence trigger's error aborts it.
        with fenced(f"run {lease.run_id} attempt {lease.attempt} checkpoint"):
            async with (
                self.lock,
                conn.pipeline(),
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                yield cur


def connection_pool(dsn: str, max_size: int) -> AsyncConnectionPool[AsyncConnection[DictRow]]:
    """Connections configured as ``connect`` makes them, for ``from_pool``.
    Opened by the caller (``await pool.open()``)."""
    return AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        # Checked on checkout (about 0.1 ms): after a database restart an
        # idle connection is replaced instead of failing, and costing an
        # attempt of, the next run that takes it.
        check=AsyncConnectionPool.check_connection,
    )


__all__ = ["FencedPostgresSaver", "LeaseLost", "RunLease", "connect"]

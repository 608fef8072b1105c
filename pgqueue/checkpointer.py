"""LangGraph's Postgres checkpointer, fenced by the run's lease.

One saver per executing run, bound to that run's own psycopg connection.
Every write the saver makes (``aput``, ``aput_writes``, ``adelete_thread``)
runs as ONE transaction, pipelined in one round trip:

    BEGIN; SELECT pgqueue_assert_lease(run, attempt, worker); <saver writes>; COMMIT

``pgqueue_assert_lease`` raises when the lease is gone, which aborts the
pipeline: the checkpoint is not written and the caller gets ``LeaseLost``.
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

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row

from pgqueue.errors import LEASE_LOST_SQLSTATE, LeaseLost
from pgqueue.sql import queries


@dataclass(frozen=True)
class RunLease:
    run_id: UUID
    attempt: int
    worker_id: str


async def connect(dsn: str) -> AsyncConnection[DictRow]:
    """A connection as the saver expects it: autocommit (the saver and the
    fence manage transactions), dict rows, no server-side prepares (pgbouncer)."""
    return await AsyncConnection.connect(
        dsn, autocommit=True, prepare_threshold=0, row_factory=dict_row
    )


class FencedPostgresSaver(AsyncPostgresSaver):
    def __init__(
        self,
        conn: AsyncConnection[DictRow],
        lease: RunLease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self.lease = lease

    @classmethod
    @asynccontextmanager
    async def for_run(cls, dsn: str, lease: RunLease) -> AsyncIterator[FencedPostgresSaver]:
        async with await connect(dsn) as conn:
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
        try:
            async with (
                self.lock,
                conn.pipeline(),
                conn.transaction(),
                conn.cursor(binary=True, row_factory=dict_row) as cur,
            ):
                await cur.execute(
                    queries.assert_lease, (lease.run_id, lease.attempt, lease.worker_id)
                )
                yield cur
        except psycopg.Error as exc:
            if exc.sqlstate == LEASE_LOST_SQLSTATE:
                raise LeaseLost(
                    f"run {lease.run_id} attempt {lease.attempt}: lease lost; checkpoint not written"
                ) from exc
            raise


__all__ = ["FencedPostgresSaver", "LeaseLost", "RunLease", "connect"]

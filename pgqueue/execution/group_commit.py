"""Group commit: a run's checkpoint writes recorded, then sent together.

``GroupCommitSaver`` is LangGraph's ``AsyncPostgresSaver`` on one run's own
psycopg connection, with that connection's transactions in one place
(``transaction``): pipelined (one round trip), under the saver's lock, and
fenced by the run's lease (the checkpoint and event tables' ``pgqueue_fence``
trigger, see ``saver``), so a lease lost raises ``LeaseLost`` and writes
nothing. ``FencedPostgresSaver`` (``saver``) builds on it.

With ``defer_writes`` (durability ``async`` and ``exit``) the checkpoint and
pending-write statements LangGraph issues are recorded, not sent: they go
out together, in order, as one fenced transaction, at most ``flush_delay``
seconds after the first of them, or earlier with whatever else the run
writes on this connection next (a batch of stream events, a read -- which
must see them -- or the run's final transaction). A short run then costs one
checkpoint transaction instead of one per write. A crash loses at most the
last ``flush_delay`` of checkpoints, and the next attempt resumes from the
one before: the contract of ``async`` durability, where a checkpoint is
still in flight while the next step runs. ``sync`` durability defers
nothing.

The saver's ``asyncio.Lock`` is not re-entrant; this class takes it exactly
where the parent does (the parent's ``_cursor`` takes it, and ``_cursor``
here takes it through ``transaction`` instead), never twice in one task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from pgqueue.db import psycopg_sql
from pgqueue.db.sql import queries
from pgqueue.errors import fenced
from pgqueue.types import Lease

log = logging.getLogger(__name__)

# True while this task is inside aput/aput_writes of a deferring saver: the
# parent's write cursor is then a recorder (see GroupCommitSaver._cursor).
_deferring: ContextVar[bool] = ContextVar("pgqueue_deferring", default=False)

# A statement the parent issued: (executemany?, query, params).
Statement = tuple[bool, str, Any]


class _Recorder:
    """Stands in for the cursor the parent writes through: keeps what it
    would have sent."""

    def __init__(self, saver: GroupCommitSaver) -> None:
        self._saver = saver

    # Appended to the saver's list as it is at the call, not as it was when
    # the cursor was opened: a flush may have taken that one meanwhile (the
    # parent awaits a thread hop while its cursor is open).
    async def execute(self, query: str, params: Any = None) -> None:
        self._saver._deferred.append((False, query, params))

    async def executemany(self, query: str, params_seq: Sequence[Any]) -> None:
        self._saver._deferred.append((True, query, list(params_seq)))


class GroupCommitSaver(AsyncPostgresSaver):
    """The run's connection and its writes: recorded and sent in groups with
    ``defer_writes``, each transaction fenced by ``lease``."""

    def __init__(
        self,
        conn: AsyncConnection[DictRow] | AsyncConnectionPool[AsyncConnection[DictRow]],
        lease: Lease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self.lease = lease
        # The run's commits wait for the WAL flush ("on", durability sync)
        # or not ("off"): set in each of its transactions, with the lease.
        self.synchronous_commit = "on"
        self.defer_writes = False
        self.flush_delay = 0.0
        self._deferred: list[Statement] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = False
        # Set once a send of recorded statements failed: they are gone, so
        # the run must not go on as if they had committed (every later write
        # raises this; the next attempt resumes from what did commit).
        self._failed: BaseException | None = None
        # Set once from_pool handed the connection back: a straggling write
        # (LangGraph's background checkpoint task) must not touch it.
        self._released = False

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        """Around the parent's write: with defer_writes, its statements are
        recorded (see _cursor) and a flush is scheduled."""
        self._check_held()
        if not self.defer_writes:
            yield
            return
        self._raise_failed_flush()
        token = _deferring.set(True)
        try:
            yield
        finally:
            _deferring.reset(token)
            self._schedule_flush()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[DictRow]]:
        """A connection for one transaction or read: the saver's own, or one
        from its pool, held only that long. A run that streams for minutes
        then holds no connection between its writes, so a worker needs
        about as many connections as it has writes in flight, not runs."""
        if isinstance(self.conn, AsyncConnectionPool):
            async with self.conn.connection() as conn:
                yield conn
        else:
            yield self.conn

    async def read(self, statement: str, *params: Any) -> DictRow | None:
        """The first row of a read of the run's (it needs no lease)."""
        self._check_held()
        async with self.lock, self._connection() as conn:
            cur = await psycopg_sql.execute(conn, statement, *params)
            return await cur.fetchone()

    @asynccontextmanager
    async def alone(self, what: str) -> AsyncIterator[bool]:
        """Under the saver's lock, for a write the caller sends on a
        connection of its own (fenced by the statement itself): True if
        that may be done, False if recorded checkpoints must go first, in a
        ``transaction`` (taken after this block)."""
        self._check_held()
        with fenced(f"run {self.lease.run_id} attempt {self.lease.attempt} {what}"):
            async with self.lock:
                self._raise_failed_flush()
                yield not self._deferred

    @asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[AsyncConnection[DictRow]]:
        """One implicit transaction, pipelined (one round trip), under the
        saver's lock and fenced by the lease, which its first statement
        names (transaction-local: the connection may serve another run
        next): what is recorded is sent first, then whatever the caller
        sends on the connection it is given. Fetching a result inside syncs
        the pipeline (a read then sees the recorded writes)."""
        self._check_held()
        with fenced(f"run {self.lease.run_id} attempt {self.lease.attempt} {what}"):
            async with self.lock:
                self._raise_failed_flush()
                batch, self._deferred = self._deferred, []
                try:
                    async with self._connection() as conn, conn.pipeline():
                        await psycopg_sql.execute(
                            conn,
                            queries.bind_transaction,
                            self.lease.setting(),
                            self.synchronous_commit,
                        )
                        if batch:
                            async with conn.cursor(binary=True) as cur:
                                for many, query, params in batch:
                                    if many:
                                        await cur.executemany(query, params)
                                    else:
                                        await cur.execute(query, params)
                        yield conn
                except Exception as exc:
                    if batch:
                        # Those statements are gone: the run must not go on
                        # as if they had committed. Every later write raises
                        # this; the next attempt resumes from what did.
                        self._failed = exc
                    raise

    async def stop_flushing(self) -> None:
        """No background flush from here on (a flush already sending is
        awaited). Raises what a background flush failed with (LeaseLost, a
        lost connection); what is still recorded stays for the next
        ``transaction``."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            if not flusher.done() and not self._writing:
                # Still waiting out the delay: nothing sent, nothing to wait
                # for. (Not awaited: its CancelledError would be
                # indistinguishable from our own task's, which may be
                # unwinding a cancel now.)
                flusher.cancel()
            else:
                await flusher
        self._raise_failed_flush()

    def discard_deferred(self) -> None:
        self._deferred = []

    async def flush(self) -> None:
        """Commit what is recorded now, in a transaction of its own (and
        what is recorded while that one is sent, in the next: no flush is
        scheduled while this one runs)."""
        self._writing = True
        try:
            while self._deferred:
                async with self.transaction("checkpoint"):
                    pass
        finally:
            self._writing = False

    def _schedule_flush(self) -> None:
        if self._failed is None and self._deferred and not self._released:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_delay)
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - kept, and raised to the run
            # Not left in this task, where nobody may ever look (a run
            # cancelled meanwhile): the run's next write, stop_flushing, or
            # the end of the run sees it in _failed.
            if self._failed is None:
                self._failed = exc

    def _check_held(self) -> None:
        if self._released:
            raise psycopg.OperationalError(
                f"run {self.lease.run_id} attempt {self.lease.attempt}: the run's "
                "connection was released; nothing was written"
            )

    def _raise_failed_flush(self) -> None:
        if self._failed is not None:
            # A lease lost is raised as LeaseLost wherever it surfaces.
            with fenced(f"run {self.lease.run_id} attempt {self.lease.attempt} checkpoint"):
                raise self._failed

    async def _settle(self) -> None:
        """On the way out of ``from_pool``: commit what is still recorded if
        that can be done (see there), and keep nothing for a later write."""
        try:
            await self.stop_flushing()
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the run already ended some other way
            log.debug("checkpoint flush failed while releasing the connection", exc_info=True)
        self._deferred = []

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        # The parent asks for pipeline=True on exactly its write paths.
        if pipeline and _deferring.get():
            yield _Recorder(self)  # type: ignore[misc]
            return
        if not pipeline and not self._deferred:
            async with super()._cursor(pipeline=False) as cur:
                yield cur
            return
        # A write, or a read that must see the recorded writes: those go
        # first, in the same round trip. No conn.transaction() here: inside
        # a pipeline psycopg syncs at BEGIN and again at COMMIT (about 4
        # round trips per write). What the pipeline sends up to its one Sync
        # already runs as a single implicit transaction, and the fence
        # trigger's error aborts it.
        async with (
            self.transaction("checkpoint") as conn,
            conn.cursor(binary=True, row_factory=dict_row) as cur,
        ):
            yield cur

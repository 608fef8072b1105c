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

Group commit. With ``defer_writes`` (durability ``async`` and ``exit``)
the checkpoint and pending-write statements LangGraph issues are recorded,
not sent: they go out together, in order, as one fenced transaction, at most
``flush_delay`` seconds after the first of them, or earlier with whatever
else the run writes on this connection next (a batch of stream events, a
read -- which must see them -- or the run's final transaction). A short run
then costs one checkpoint transaction instead of one per write. A crash
loses at most the last ``flush_delay`` of checkpoints, and the next attempt
resumes from the one before: the contract of ``async`` durability, where a
checkpoint is still in flight while the next step runs. ``sync`` durability
defers nothing.

Serialization inline. The parent (de)serializes checkpoints, blobs and
writes through ``asyncio.to_thread``. The serializer holds the GIL while it
works, so the thread buys no parallelism, only a hand-off and a wake-up of
the event loop per call, about 80 us of CPU each here, four per run of a
one-node graph (about 4% of a run's worker CPU). This saver's calls run it
inline (``_inline_serde``); any other saver in the process keeps its thread.

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
import contextlib
import logging
import select
import types
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import langgraph.checkpoint.postgres.aio as saver_module
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
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from pgqueue.db import psycopg_sql
from pgqueue.db.sql import queries
from pgqueue.errors import LeaseLost, fenced
from pgqueue.types import Lease

log = logging.getLogger(__name__)

# True while this task is inside aput/aput_writes of a deferring saver: the
# parent's write cursor is then a recorder (see FencedPostgresSaver._cursor).
_deferring: ContextVar[bool] = ContextVar("pgqueue_deferring", default=False)

# True while this task is inside a FencedPostgresSaver call: the parent's
# asyncio.to_thread then runs its (de)serializing function inline.
_inline: ContextVar[bool] = ContextVar("pgqueue_inline_serde", default=False)


class _SaverAsyncio(types.ModuleType):
    """``asyncio`` as the parent's module sees it: the real one, except that
    ``to_thread`` runs inline for this module's savers (see the module doc)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _inline.get():
            return func(*args, **kwargs)
        return await asyncio.to_thread(func, *args, **kwargs)


if saver_module.asyncio is asyncio:  # once, however often this is imported
    saver_module.asyncio = _SaverAsyncio("asyncio")  # type: ignore[attr-defined]


@contextlib.contextmanager
def _inline_serde() -> Iterator[None]:
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)


def _namespace(config: RunnableConfig) -> str:
    return str(config["configurable"].get("checkpoint_ns", ""))


# A statement the parent issued: (executemany?, query, params).
Statement = tuple[bool, str, Any]


class _Recorder:
    """Stands in for the cursor the parent writes through: keeps what it
    would have sent."""

    def __init__(self, saver: FencedPostgresSaver) -> None:
        self._saver = saver

    # Appended to the saver's list as it is at the call, not as it was when
    # the cursor was opened: a flush may have taken that one meanwhile (the
    # parent awaits a thread hop while its cursor is open).
    async def execute(self, query: str, params: Any = None) -> None:
        self._saver._deferred.append((False, query, params))

    async def executemany(self, query: str, params_seq: Sequence[Any]) -> None:
        self._saver._deferred.append((True, query, list(params_seq)))


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


class FencedPostgresSaver(AsyncPostgresSaver):
    def __init__(
        self,
        conn: AsyncConnection[DictRow],
        lease: Lease,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(conn, serde=serde)
        self.lease = lease
        self.defer_writes = False
        self.flush_delay = 0.0
        self._deferred: list[Statement] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing = False
        # Set once a send of recorded statements failed: they are gone, so
        # the run must not go on as if they had committed (every later write
        # raises this; the next attempt resumes from what did commit).
        self._failed: BaseException | None = None
        # (lease, synchronous_commit) still to be set on the connection: sent
        # at the head of the run's first transaction (no round trip of its
        # own). Reads need no lease.
        self._unbound: tuple[str, str] | None = None
        # Set once from_pool handed the connection back: a straggling write
        # (LangGraph's background checkpoint task) must not touch it.
        self._released = False
        # See "The run's own latest checkpoint" in the module doc.
        self.remember_latest = False
        self._latest: CheckpointTuple | None = None
        # Root checkpoints this run put writes for.
        self._written: set[str] = set()

    # -- group commit --------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        with self._recording(), _inline_serde():
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
        with self._recording(), _inline_serde():
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
        with _inline_serde():
            return await super().aget_tuple(config)

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
    async def transaction(self, what: str) -> AsyncIterator[AsyncConnection[DictRow]]:
        """One implicit transaction on the run's connection, pipelined (one
        round trip), under the saver's lock and fenced by the lease: what is
        recorded is sent first, then whatever the caller sends on the
        connection it is given. Fetching a result inside syncs the pipeline
        (a read then sees the recorded writes)."""
        conn = self.conn
        assert isinstance(conn, AsyncConnection)
        self._check_held()
        with fenced(f"run {self.lease.run_id} attempt {self.lease.attempt} {what}"):
            async with self.lock:
                self._raise_failed_flush()
                batch, self._deferred = self._deferred, []
                unbound, self._unbound = self._unbound, None
                try:
                    async with conn.pipeline():
                        if unbound is not None:
                            await psycopg_sql.execute(conn, queries.bind_run, *unbound)
                        if batch:
                            async with conn.cursor(binary=True) as cur:
                                for many, query, params in batch:
                                    if many:
                                        await cur.executemany(query, params)
                                    else:
                                        await cur.execute(query, params)
                        yield conn
                except Exception as exc:
                    # A setting made in a transaction that failed is undone.
                    self._unbound = unbound
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
        self._latest = None

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

    async def bind(self, lease: Lease) -> None:
        """Point this saver and its connection at another lease (a connection
        reused for the next run)."""
        conn = self.conn
        assert isinstance(conn, AsyncConnection)
        async with self.lock:
            await psycopg_sql.execute(conn, queries.set_lease, lease.setting())
        self.lease = lease

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
        """A saver on a pooled connection, named for ``lease`` while the run
        holds it. Connecting costs 10-20 ms here, more than a whole run of a
        small graph; the next run on the connection names its own lease
        before it writes anything. ``wait_for_flush`` False: checkpoint
        commits do not wait for the WAL flush (see bind_run).
        ``flush_delay`` not None: group commit (see the module's doc).

        On the way out, checkpoints still recorded are committed (a run
        stopped by a retriable error or handed back at shutdown keeps its
        progress; fenced, so a lost lease writes nothing) before the
        connection goes back to the pool, where no flush of this run may
        follow it."""
        async with pool.connection() as conn:
            saver = cls(conn, lease)
            saver._unbound = (lease.setting(), "on" if wait_for_flush else "off")
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

    async def _settle(self) -> None:
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


__all__ = ["FencedPostgresSaver", "LeaseLost", "connect"]

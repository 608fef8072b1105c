"""A run's stream events: written fenced, in order, in batches.

Chunks a graph yields while it runs are buffered; one flush at a time writes
everything buffered so far in one round trip, so a fast graph costs a few
writes, not one per chunk, and a short one none of its own: its events
commit with its final status. A flush goes in the run's psycopg transaction
with the checkpoints it has recorded (insert and NOTIFY, the lease checked
by the table's fence trigger), or, with none recorded, alone as one asyncpg
statement that asserts the lease itself: half the client CPU, which matters
for a run streaming tokens. A worker that lost its lease writes no event. ``seq`` goes on from
the last event any earlier attempt wrote.

Once a batch has committed, it goes to the run's ``LiveRun`` (if the
process serves streams too): followers in this process take it from
memory instead of the table (``pgqueue.core.live``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any

import asyncpg

from pgqueue.core.live import LiveRun, StoredEvent
from pgqueue.db import psycopg_sql
from pgqueue.db.encoding import dumps
from pgqueue.db.pools import DATABASE_AWAY
from pgqueue.db.sql import queries
from pgqueue.errors import RetriableError
from pgqueue.execution.saver import FencedPostgresSaver
from pgqueue.observe import metrics

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def _name(event: str) -> str:
    """An event's name as a JSON string (a handful of names, each escaped once)."""
    return json.dumps(event)


class EventWriter:
    """Buffers a run's events and writes them in batches.

    The first flush waits ``flush_delay`` seconds after the first event, so
    a short run's events (metadata, its few chunks) are not written one
    transaction each: whatever is still buffered when the run ends goes into
    the run's final transaction (``take()``), with its status. Streams see
    events at most ``flush_delay`` late.
    """

    def __init__(
        self,
        saver: FencedPostgresSaver,
        *,
        continues: bool = True,
        flush_delay: float = 0.0,
        live: LiveRun | None = None,
        pool: asyncpg.Pool | None = None,
    ) -> None:
        """``continues`` False: the run's first attempt, with no events
        before it to number after. ``live``: where committed batches go.
        ``pool``: where a batch with no checkpoint to go along is written."""
        self._saver = saver
        self._live = live
        self._pool = pool
        # Handed to the caller by take(), published once it committed them.
        self._taken: list[tuple[int, str, str]] = []
        self._continues = continues
        self._flush_delay = flush_delay
        # (seq, event, data as JSON text): encoded when added, so the event
        # keeps the chunk as it was even if the graph mutates it later.
        self._buffer: list[tuple[int, str, str]] = []
        self._seq = 0
        self._flusher: asyncio.Task[None] | None = None
        self._writing = False
        # What a background flush failed with, for the run to raise.
        self._error: Exception | None = None
        self.written = 0

    async def start(self) -> None:
        if not self._continues:
            return
        row = await self._saver.read(queries.last_event_seq, self._saver.lease.run_id)
        self._seq = int(row["seq"]) if row else 0
        if self._live is not None:
            self._live.base = self._seq

    def add(self, event: str, data: Any) -> None:
        """Queue one event; a flush starts unless one is already pending
        (it will take this event along)."""
        if self._error is not None:
            raise self._error  # e.g. LeaseLost: stop the run
        self._seq += 1
        self._buffer.append((self._seq, event, dumps(data)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    async def take(self) -> tuple[Any, ...] | None:
        """Stop background flushing and hand over what is still buffered, as
        parameters for ``insert_events`` (None if nothing is): the caller
        writes them in its own transaction."""
        await self._stop_flusher()
        batch = self._batch()
        self._taken = batch
        return self._params(batch) if batch else None

    def ended(self, status: str) -> None:
        """The caller committed what take() handed over, with the run's
        final status: followers in this process see both."""
        taken, self._taken = self._taken, []
        metrics.EVENTS_WRITTEN.inc(len(taken))
        if self._live is not None:
            self._publish(taken)
            self._live.finish(status)

    async def close(self) -> None:
        """Write whatever is still buffered; raises LeaseLost if fenced out."""
        await self._stop_flusher()
        await self._flush()

    async def abandon(self) -> None:
        """Stop writing (the run is over without a final write of ours). Must
        be awaited before the connection goes back to the pool, so no flush
        runs under the next run's lease."""
        try:
            await self._stop_flusher()
        except Exception:  # noqa: BLE001 - the run already failed; its events go with it
            log.debug("event flush failed while abandoning", exc_info=True)
        self._buffer = []
        if self._live is not None:
            self._live.detach()  # a no-op once ended()

    async def _stop_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return
        if not flusher.done() and not self._writing:
            flusher.cancel()  # still waiting out the delay: nothing sent yet
        else:
            await flusher
        if self._error is not None:
            raise self._error

    def _batch(self) -> list[tuple[int, str, str]]:
        batch, self._buffer = self._buffer, []
        self.written += len(batch)
        return batch

    def _params(self, batch: list[tuple[int, str, str]]) -> tuple[Any, ...]:
        """insert_events' parameters: run, attempt, and the batch as one
        JSON array of [seq, event, data], joined from text already encoded."""
        rows = ",".join(f"[{seq},{_name(event)},{data}]" for seq, event, data in batch)
        return (self._saver.lease.run_id, self._saver.lease.attempt, f"[{rows}]")

    def _publish(self, batch: list[tuple[int, str, str]]) -> None:
        if self._live is not None and batch:
            self._live.publish([StoredEvent(seq, event, data) for seq, event, data in batch])

    async def _flush_later(self) -> None:
        if self._flush_delay > 0:
            await asyncio.sleep(self._flush_delay)
        try:
            await self._flush()
        except Exception as exc:  # noqa: BLE001 - kept, and raised to the run
            # Not left in this task, where nobody may look (a run cancelled
            # meanwhile): the run's next event or its end raises it.
            self._error = exc

    async def _flush(self) -> None:
        self._writing = True
        try:
            while batch := self._batch():
                if not await self._write_alone(batch):
                    # Fenced by the pgqueue_fence trigger on run_events. The
                    # checkpoints recorded so far go along, and first: a
                    # client told of a step can read its checkpoint.
                    async with self._saver.transaction("events") as conn:
                        await psycopg_sql.execute(conn, queries.insert_events, *self._params(batch))
                metrics.EVENTS_WRITTEN.inc(len(batch))
                self._publish(batch)
        finally:
            self._writing = False

    async def _write_alone(self, batch: list[tuple[int, str, str]]) -> bool:
        """The batch in one asyncpg statement of its own, fenced in the
        statement, if no checkpoint is recorded to go first (a psycopg
        pipeline costs twice the client CPU); False: it was not sent."""
        if self._pool is None:
            return False
        lease = self._saver.lease
        async with self._saver.alone("events") as free:
            if not free:
                return False
            try:
                await self._pool.execute(
                    queries.insert_events_fenced,
                    *self._params(batch),
                    lease.worker_id,
                    self._saver.synchronous_commit,
                )
            except DATABASE_AWAY as exc:
                # A lost connection or a database on its way down or up ("cannot
                # connect now"), as on the psycopg connections: the run is
                # retried from its last checkpoint.
                raise RetriableError(f"writing events of run {lease.run_id}: {exc}") from exc
        return True

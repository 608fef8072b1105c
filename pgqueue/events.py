"""A run's stream events: written fenced, in order, in batches.

Chunks a graph yields while it runs are buffered; one flush at a time writes
everything buffered so far as one pipelined transaction on the run's own
connection (insert and NOTIFY, the lease checked by the table's fence
trigger: one round trip), so a fast graph
costs a few writes, not one per chunk. A worker that lost its lease writes
no event. ``seq`` goes on from the last event any earlier attempt wrote.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg

from pgqueue.checkpointer import FencedPostgresSaver
from pgqueue.encoding import dumps
from pgqueue.errors import fenced
from pgqueue.sql import queries

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "pgqueue_events"


class EventWriter:
    def __init__(self, saver: FencedPostgresSaver) -> None:
        self._saver = saver
        # (seq, event, data as JSON text): encoded when added, so the event
        # keeps the chunk as it was even if the graph mutates it later.
        self._buffer: list[tuple[int, str, str]] = []
        self._seq = 0
        self._flusher: asyncio.Task[None] | None = None
        self.written = 0

    async def start(self) -> None:
        conn = self._conn()
        async with self._saver.lock:
            cur = await conn.execute(queries.last_event_seq_psycopg, (self._saver.lease.run_id,))
            row = await cur.fetchone()
        self._seq = int(row["seq"]) if row else 0

    def add(self, event: str, data: Any) -> None:
        """Queue one event; a flush starts unless one is already running
        (it will take this event along on its next pass)."""
        if self._flusher is not None and self._flusher.done() and self._flusher.exception():
            raise self._flusher.exception()  # type: ignore[misc]  # e.g. LeaseLost: stop the run
        self._seq += 1
        self._buffer.append((self._seq, event, dumps(data)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def close(self) -> None:
        """Write whatever is still buffered; raises LeaseLost if fenced out."""
        if self._flusher is not None:
            flusher, self._flusher = self._flusher, None
            await flusher
        if self._buffer:
            await self._flush()

    def _conn(self) -> psycopg.AsyncConnection[Any]:
        conn = self._saver.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        return conn

    async def _flush(self) -> None:
        lease = self._saver.lease
        conn = self._conn()
        while self._buffer:
            batch, self._buffer = self._buffer, []
            params = {
                "run_id": lease.run_id,
                "attempt": lease.attempt,
                "seqs": [seq for seq, _, _ in batch],
                "events": [event for _, event, _ in batch],
                "datas": [data for _, _, data in batch],
            }
            # Fenced by the pgqueue_fence trigger on run_events.
            with fenced(f"run {lease.run_id} events"):
                async with self._saver.lock, conn.pipeline():
                    await conn.execute(queries.insert_events_psycopg, params)
            self.written += len(batch)

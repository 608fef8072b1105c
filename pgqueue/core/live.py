"""Committed stream events handed from a run to followers in the same process.

A run's events are stored in ``run_events`` and announced with NOTIFY; a
follower elsewhere reads them from the table. A follower in the process that
executes the run (``pgqueue serve``) need not: once a batch of events has
committed, the run's ``EventWriter`` hands it to its ``LiveRun`` here, and
followers take it from memory, with neither a NOTIFY round trip nor two
queries per batch. Only committed events are handed over, so an event id a
follower sends is one the table holds (DESIGN invariant 6): a worker that
loses its lease before a commit has published nothing that a new attempt
could number differently.

The table stays the source of truth. A follower reads it for what came
before this process's attempt (or before the oldest event still kept here),
and goes back to it when the local execution stops without a final status
(a lost lease, a retriable error, a shutdown that hands the run back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

# Events a live run keeps for followers that join late or fall behind; older
# ones are read from the table. About 1 MB at the ~900 bytes of a token event.
KEEP = 1000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event: str
    # JSON text, as stored: streamed on without decoding.
    data: str


class LiveRun:
    """One run executing in this process: its committed events, in order."""

    def __init__(self, hub: LiveRuns, run_id: UUID) -> None:
        self._hub = hub
        self.run_id = run_id
        self.events: list[StoredEvent] = []
        # The seq just before ``events[0]``: this attempt's events start
        # after the last one earlier attempts wrote (set by the writer).
        self.base = 0
        # The final status once it committed (every event is in ``events``
        # or was trimmed from it); None while the run goes on.
        self.status: str | None = None
        # The local execution stopped without a final status: followers go
        # back to the table.
        self.detached = False
        self._waiters: set[asyncio.Event] = set()

    @property
    def over(self) -> bool:
        return self.status is not None or self.detached

    def publish(self, batch: list[StoredEvent]) -> None:
        """Events that have just committed, in seq order."""
        if not batch or self.over:
            return
        self.events.extend(batch)
        if len(self.events) > 2 * KEEP:
            self.base = self.events[-KEEP - 1].seq
            del self.events[:-KEEP]
        self._wake()

    def finish(self, status: str) -> None:
        """The run's final status committed (with its last events, published
        first)."""
        if not self.over:
            self.status = status
            self._end()

    def detach(self) -> None:
        if not self.over:
            self.detached = True
            self._end()

    def after(self, seq: int) -> list[StoredEvent] | None:
        """The kept events with seq > ``seq``; None if some of them are no
        longer kept here (or came before this attempt): read the table."""
        if seq < self.base:
            return None
        return self.events[seq - self.base :]

    def waiter(self) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters.add(event)
        if self.over:
            event.set()
        return event

    def forget(self, event: asyncio.Event) -> None:
        self._waiters.discard(event)

    def _end(self) -> None:
        self._hub.remove(self)
        self._wake()

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()


class LiveRuns:
    """The runs this process executes, by id."""

    def __init__(self, on_start: Callable[[UUID], None] | None = None) -> None:
        self._runs: dict[UUID, LiveRun] = {}
        self._on_start = on_start

    def start(self, run_id: UUID) -> LiveRun:
        """A run begins executing here (``on_start`` wakes its followers)."""
        previous = self._runs.get(run_id)
        if previous is not None:
            previous.detach()
        live = self._runs[run_id] = LiveRun(self, run_id)
        if self._on_start is not None:
            self._on_start(run_id)
        return live

    def get(self, run_id: UUID) -> LiveRun | None:
        return self._runs.get(run_id)

    def remove(self, live: LiveRun) -> None:
        if self._runs.get(live.run_id) is live:
            del self._runs[live.run_id]

"""Follow runs from any process: their stored events and their end.

Workers write each run's stream chunks to ``run_events`` and announce them
with NOTIFY on ``pgqueue_events`` ("run_id:seq", and "run_id:end" once the
final status is written). A ``RunWatch`` shares the process's one LISTEN
connection among every local follower: a follower waits on its run's
signal, then reads what is new from the table. Followers also re-read on a
short timer, so a NOTIFY lost while the listener reconnected (or a run that
ended without one: a sweep that failed it, a rollback) only delays them.

A run this process executes needs neither: its followers take its events
from memory once they committed (``pgqueue.core.live``), and read the table
only for what came before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from pgqueue.core.live import LiveRun, LiveRuns, StoredEvent
from pgqueue.core.notifier import RECONNECTED, Notifier
from pgqueue.db.sql import queries
from pgqueue.types import EVENTS_CHANNEL, TERMINAL_STATUSES

READ_BATCH = 500

T = TypeVar("T")


class RunWatch:
    """Per-process registry of local followers, woken by NOTIFY."""

    def __init__(self, notifier: Notifier) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Those that care only about the run's end (joiners), not each batch
        # of its events: woken by 'run_id:end' alone.
        self._end_waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._unsubscribe: Callable[[], None] = notifier.subscribe(EVENTS_CHANNEL, self._on_notify)
        # Runs executing in this process; starting one wakes its followers,
        # which then leave the table for memory.
        self.live = LiveRuns(on_start=self._on_start)

    def close(self) -> None:
        self._unsubscribe()

    def _on_notify(self, payload: str) -> None:
        if payload == RECONNECTED:
            # Anything may have happened while nobody listened: wake all.
            for waiters in (self._waiters, self._end_waiters):
                for events in waiters.values():
                    for event in events:
                        event.set()
            return
        run_id, _, what = payload.partition(":")
        for event in self._waiters.get(run_id, ()):
            event.set()
        if what == "end":
            for event in self._end_waiters.get(run_id, ()):
                event.set()

    def _on_start(self, run_id: UUID) -> None:
        for event in self._waiters.get(str(run_id), ()):
            event.set()

    @contextlib.contextmanager
    def signal(self, run_id: UUID, *, ends_only: bool = False) -> Any:
        """An event set when the run writes events or ends (``ends_only``:
        when it ends). Runs that end without that NOTIFY (a sweeper giving
        up on one, a rollback) are seen by the caller's poll."""
        waiters = self._end_waiters if ends_only else self._waiters
        key = str(run_id)
        event = asyncio.Event()
        waiters[key].add(event)
        try:
            yield event
        finally:
            waiters[key].discard(event)
            if not waiters[key]:
                del waiters[key]

    def subscribe(self, run_id: UUID, *, ends_only: bool = False) -> Subscription:
        """``signal`` for a caller whose wait outlives one block (a check
        now, the wait in a response body later): close() when done."""
        return Subscription(self.signal(run_id, ends_only=ends_only))


class Subscription:
    def __init__(self, signal: contextlib.AbstractContextManager[asyncio.Event]) -> None:
        self._signal: contextlib.AbstractContextManager[asyncio.Event] | None = signal
        self.event = signal.__enter__()

    def close(self) -> None:
        signal, self._signal = self._signal, None
        if signal is not None:
            signal.__exit__(None, None, None)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    event.clear()


async def run_status(pool: asyncpg.Pool, run_id: UUID) -> str | None:
    return await pool.fetchval(queries.get_run_status, run_id)  # type: ignore[no-any-return]


async def wait_for_end(
    pool: asyncpg.Pool, watch: RunWatch, run_id: UUID, poll: float = 1.0
) -> str | None:
    """Wait until the run is no longer pending or running; its final status,
    or None if the run no longer exists (rolled back, deleted)."""

    async def ended() -> tuple[str | None] | None:
        status = await run_status(pool, run_id)
        return (status,) if status is None or status in TERMINAL_STATUSES else None

    (status,) = await wait_until(watch, run_id, ended, poll, ends_only=True)
    return status


async def wait_until(
    watch: RunWatch,
    run_id: UUID,
    check: Callable[[], Awaitable[T | None]],
    poll: float = 1.0,
    *,
    ends_only: bool = False,
    subscribed: Subscription | None = None,
) -> T:
    """Call ``check`` now and whenever the run signals (or ``poll`` seconds
    pass) until it returns something other than None; return that. One
    query per wake-up when ``check`` reads everything it needs at once.
    ``ends_only``: wake on the run's end, not on each batch of its events.
    ``subscribed``: the caller subscribed and has checked once since; wait
    before the next check."""
    with contextlib.ExitStack() as stack:
        if subscribed is not None:
            event = subscribed.event
            await _wait(event, poll)
        else:
            event = stack.enter_context(watch.signal(run_id, ends_only=ends_only))
        while True:
            found = await check()
            if found is not None:
                return found
            await _wait(event, poll)


async def follow(
    pool: asyncpg.Pool,
    watch: RunWatch,
    run_id: UUID,
    after: int = 0,
    poll: float = 1.0,
) -> AsyncGenerator[list[StoredEvent], None]:
    """The run's events with seq > ``after``, stored and then live, in
    batches (as they were read or committed), until the run has ended and
    every event it wrote has been yielded. From memory while this process
    executes the run and keeps what comes next; from the table otherwise."""
    with watch.signal(run_id) as event:
        while True:
            live = watch.live.get(run_id)
            if live is not None and live.after(after) is not None:
                async for batch in _follow_live(live, after):
                    after = batch[-1].seq
                    yield batch
                if live.status is not None and live.after(after) == []:
                    return
                # Detached, or fell behind what memory keeps: the table.
                continue
            # The status and the events in one snapshot: events written
            # before or with a final status are all in the read that sees it.
            while True:
                rows = await pool.fetch(queries.read_events, run_id, after, READ_BATCH)
                status = rows[0]["status"] if rows else None
                ended = status is None or status in TERMINAL_STATUSES
                batch = [StoredEvent(r["seq"], r["event"], r["data"]) for r in rows if r["seq"]]
                if batch:
                    after = batch[-1].seq
                    yield batch
                if len(batch) < READ_BATCH:
                    break
            if ended:
                return
            live = watch.live.get(run_id)
            if live is None or live.after(after) is None:
                await _wait(event, poll)


async def _follow_live(live: LiveRun, after: int) -> AsyncGenerator[list[StoredEvent], None]:
    """The run's committed events after ``after`` from memory, until its
    local execution is over or what comes next is no longer kept."""
    waiter = live.waiter()
    try:
        while True:
            # Read before looking: the last events are published before
            # the run is over.
            over = live.over
            batch = live.after(after)
            if batch is None:
                return
            if batch:
                after = batch[-1].seq
                yield batch
            if over:
                return
            await waiter.wait()
            waiter.clear()
    finally:
        live.forget(waiter)

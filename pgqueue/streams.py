"""Follow runs from any process: their stored events and their end.

Workers write each run's stream chunks to ``run_events`` and announce them
with NOTIFY on ``pgqueue_events`` ("run_id:seq", and "run_id:end" once the
final status is written). A ``RunWatch`` shares the process's one LISTEN
connection among every local follower: a follower waits on its run's
signal, then reads what is new from the table. Followers also re-read on a
short timer, so a NOTIFY lost while the listener reconnected (or a run that
ended without one: a sweep that failed it, a rollback) only delays them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from pgqueue.events import EVENTS_CHANNEL
from pgqueue.notifier import RECONNECTED, Notifier
from pgqueue.queue import TERMINAL_STATUSES
from pgqueue.sql import queries

READ_BATCH = 500

T = TypeVar("T")


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: str
    # JSON text, as stored: streamed on without decoding.
    data: str


class RunWatch:
    """Per-process registry of local followers, woken by NOTIFY."""

    def __init__(self, notifier: Notifier) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._unsubscribe: Callable[[], None] = notifier.subscribe(EVENTS_CHANNEL, self._on_notify)

    def close(self) -> None:
        self._unsubscribe()

    def _on_notify(self, payload: str) -> None:
        if payload == RECONNECTED:
            # Anything may have happened while nobody listened: wake all.
            for events in self._waiters.values():
                for event in events:
                    event.set()
            return
        run_id, _, _ = payload.partition(":")
        for event in self._waiters.get(run_id, ()):
            event.set()

    @contextlib.contextmanager
    def signal(self, run_id: UUID) -> Any:
        key = str(run_id)
        event = asyncio.Event()
        self._waiters[key].add(event)
        try:
            yield event
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]


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

    (status,) = await wait_until(watch, run_id, ended, poll)
    return status


async def wait_until(
    watch: RunWatch,
    run_id: UUID,
    check: Callable[[], Awaitable[T | None]],
    poll: float = 1.0,
) -> T:
    """Call ``check`` now and whenever the run signals (or ``poll`` seconds
    pass) until it returns something other than None; return that. One
    query per wake-up when ``check`` reads everything it needs at once."""
    with watch.signal(run_id) as event:
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
) -> AsyncGenerator[StoredEvent, None]:
    """The run's events with seq > ``after``, stored and then live, until the
    run has ended and every event it wrote has been yielded."""
    with watch.signal(run_id) as event:
        while True:
            # Status first: events written before a final status are all
            # visible once that status is, so one more read drains them.
            status = await run_status(pool, run_id)
            ended = status is None or status in TERMINAL_STATUSES
            while True:
                rows = await pool.fetch(queries.read_events, run_id, after, READ_BATCH)
                for row in rows:
                    after = row["seq"]
                    yield StoredEvent(row["seq"], row["event"], row["data"])
                if len(rows) < READ_BATCH:
                    break
            if ended:
                return
            await _wait(event, poll)

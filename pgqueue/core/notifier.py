"""One LISTEN connection per process, fanned out to every local subscriber.

Workers subscribe a callback instead of each holding a LISTEN connection.
When the connection drops (server restart, ``pg_terminate_backend``, network)
the notifier reconnects with backoff, re-subscribes, and calls every
subscriber with ``RECONNECTED`` so they do a catch-up claim for whatever was
submitted while nobody listened.

A first subscription to a channel is the same gap in small: ``subscribe``
only schedules the ``LISTEN``, and a caller that already looked (a worker's
first claim) would miss what is announced before the ``LISTEN`` is in
place. So once that ``LISTEN`` has run, the channel's subscribers get
``RECONNECTED`` too, and look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from pgqueue.db import pools as db
from pgqueue.observe import metrics

log = logging.getLogger(__name__)

RECONNECTED = "\x00reconnected"

Callback = Callable[[str], None]


@dataclass
class NotifierConfig:
    # How often the idle connection is probed; a silent half-open connection
    # is noticed within this (a server-side close is noticed at once).
    health_check_interval: float = 5.0
    health_check_timeout: float = 2.0
    reconnect_delay_initial: float = 0.05
    # Until the LISTEN is back, new runs wait for the poll: after an outage
    # of any length the listener is back within this of the database.
    reconnect_delay_max: float = 2.0
    connect_timeout: float = db.CONNECT_TIMEOUT


class Notifier:
    def __init__(self, dsn: str, config: NotifierConfig | None = None) -> None:
        self._dsn = dsn
        self._config = config or NotifierConfig()
        self._subscribers: dict[str, list[Callback]] = defaultdict(list)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        # One statement at a time on the LISTEN connection: a second
        # subscribe or the health probe must not overlap a LISTEN.
        self._conn_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.backend_pid: int | None = None

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(payload)`` on each notification; returns an unsubscribe."""
        is_new_channel = channel not in self._subscribers
        self._subscribers[channel].append(callback)
        if is_new_channel and self._conn is not None and not self._conn.is_closed():
            # Keep a reference: the loop holds tasks only weakly.
            task = asyncio.get_running_loop().create_task(self._listen_late(self._conn, channel))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers[channel].remove(callback)

        return unsubscribe

    async def start(self) -> None:
        """Connect and listen; returns once the first LISTEN is in place."""
        self._task = asyncio.create_task(self._run(), name="pgqueue-notifier")
        connected = asyncio.ensure_future(self.connected.wait())
        done, _ = await asyncio.wait([self._task, connected], return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if self._task in done:
            self._task.result()  # re-raise why it stopped

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _dispatch(self, channel: str, payload: str) -> None:
        for callback in list(self._subscribers.get(channel, ())):
            try:
                callback(payload)
            except Exception:
                log.exception(
                    "notification subscriber failed", extra={"event": "notify_callback_error"}
                )

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        metrics.NOTIFICATIONS.labels(channel).inc()
        self._dispatch(channel, payload)

    def _on_termination(self, _conn: object) -> None:
        self._lost.set()

    async def _listen(self, conn: asyncpg.Connection, channel: str) -> bool:
        try:
            async with self._conn_lock:
                await conn.add_listener(channel, self._on_notification)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The connection is going away; _connect re-listens every channel
            # (and the reconnect sends RECONNECTED).
            log.warning("LISTEN %s failed: %s", channel, exc, extra={"event": "listen_failed"})
            self._lost.set()
            return False
        return True

    async def _listen_late(self, conn: asyncpg.Connection, channel: str) -> None:
        """LISTEN on a channel first subscribed to while connected; then its
        subscribers catch up on what was announced before it was in place
        (see the module doc)."""
        if await self._listen(conn, channel):
            self._dispatch(channel, RECONNECTED)

    async def _connect(self) -> asyncpg.Connection:
        conn = await db.connect(self._dsn, connect_timeout=self._config.connect_timeout)
        conn.add_termination_listener(self._on_termination)
        for channel in list(self._subscribers):
            await self._listen(conn, channel)
        return conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    async def _run(self) -> None:
        delay = self._config.reconnect_delay_initial
        first = True
        while True:
            try:
                self._lost.clear()
                self._conn = await self._connect()
                self.backend_pid = self._conn.get_server_pid()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if first:
                    raise  # misconfiguration: let start() report it
                log.warning(
                    "LISTEN connection failed; retrying in %.2fs: %s: %s",
                    delay,
                    type(exc).__name__,
                    exc,
                    extra={"event": "notifier_connect_failed"},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._config.reconnect_delay_max)
                continue
            delay = self._config.reconnect_delay_initial
            self.connected.set()
            if not first:
                self.reconnects += 1
                log.info("LISTEN connection restored", extra={"event": "notifier_reconnected"})
                # Anything submitted while we were deaf: let subscribers catch up.
                for channel in list(self._subscribers):
                    self._dispatch(channel, RECONNECTED)
            first = False
            await self._watch()
            self.connected.clear()
            log.warning("LISTEN connection lost", extra={"event": "notifier_disconnected"})
            await self._close()

    async def _watch(self) -> None:
        """Return when the connection is gone: closed by the server, or
        failing a periodic probe."""
        assert self._conn is not None
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self._config.health_check_interval)
                return
            except TimeoutError:
                pass
            try:
                async with self._conn_lock:
                    await self._conn.fetchval("SELECT 1", timeout=self._config.health_check_timeout)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                return

"""Lease renewal, off the event loop.

A run's code may block the worker's event loop (``time.sleep``, a CPU-bound
step, a sync client). The heartbeat must not stop with it, or the sweeper
would hand a healthy run to someone else. So it runs in its own thread, with
its own event loop and its own connection; it only reads the worker's set of
held leases (a locked snapshot) and reports back leases it found taken away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from pgqueue.sql import queries

log = logging.getLogger(__name__)

Lease = tuple[UUID, int]


@dataclass
class HeartbeatConfig:
    interval: float = 5.0
    # Heartbeats are not worth an fsync each: a beat lost in a crash only
    # makes a lease look a few seconds older.
    synchronous_commit: bool = False
    reconnect_delay_max: float = 2.0


@dataclass
class HeartbeatResult:
    renewed: set[UUID] = field(default_factory=set)
    lost: set[Lease] = field(default_factory=set)


class LeaseTable:
    """The leases a worker holds, shared between its loop and the heartbeat thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: set[Lease] = set()

    def add(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)

    def discard(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def snapshot(self) -> list[Lease]:
        with self._lock:
            return list(self._leases)

    def __len__(self) -> int:
        with self._lock:
            return len(self._leases)


class Heartbeat:
    def __init__(
        self,
        dsn: str,
        worker_id: str,
        leases: LeaseTable,
        *,
        concurrency: int,
        on_lost: Callable[[set[Lease]], None] | None = None,
        config: HeartbeatConfig | None = None,
    ) -> None:
        self._dsn = dsn
        self._worker_id = worker_id
        self._leases = leases
        self._concurrency = concurrency
        self._on_lost = on_lost
        self.config = config or HeartbeatConfig()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: asyncpg.Connection | None = None
        self.beats = 0
        self.last_beat_monotonic: float | None = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            settings = {} if self.config.synchronous_commit else {"synchronous_commit": "off"}
            self._conn = await asyncpg.connect(self._dsn, server_settings=settings)
        return self._conn

    async def run_once(self) -> HeartbeatResult:
        """Renew every held lease once; report those no longer held."""
        held = self._leases.snapshot()
        conn = await self._connection()
        rows = await conn.fetch(
            queries.heartbeat,
            self._worker_id,
            [run_id for run_id, _ in held],
            [attempt for _, attempt in held],
            socket.gethostname(),
            os.getpid(),
            self._concurrency,
        )
        renewed = {r["run_id"] for r in rows}
        # The same run can appear twice (a stale attempt still unwinding and
        # the current one): the UPDATE matched only the current attempt.
        current = {(r["run_id"], r["attempt"]) for r in rows}
        result = HeartbeatResult(renewed, {lease for lease in held if lease not in current})
        self.beats += 1
        self.last_beat_monotonic = time.monotonic()
        if result.lost and self._on_lost is not None:
            self._on_lost(result.lost)
        return result

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="pgqueue-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        delay = 0.05
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                    delay = 0.05
                    wait = self.config.interval
                except (
                    TimeoutError,
                    OSError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    log.warning("heartbeat failed: %s", exc, extra={"event": "heartbeat_failed"})
                    if self._conn is not None:
                        self._conn.terminate()
                        self._conn = None
                    wait = delay
                    delay = min(delay * 2, self.config.reconnect_delay_max)
                # This loop serves nothing else: block on the threading event
                # so that stop() wakes it at once.
                self._stop.wait(wait)
        finally:
            if self._conn is not None:
                await self._conn.close()

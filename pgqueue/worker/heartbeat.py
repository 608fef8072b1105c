"""Lease renewal, off the event loop.

A run's code may block the worker's event loop (``time.sleep``, a CPU-bound
step, a sync client). The heartbeat must not stop with it, or the sweeper
would hand a healthy run to someone else. So it runs in its own thread, with
its own event loop and its own connection; it only reads the worker's set of
held leases (a locked snapshot) and reports back leases it found taken away.

It also tells when the worker is no longer alive in the queue's eyes: once
no beat has landed for longer than the lease window, sweepers elsewhere hand
this worker's runs to others, so it calls ``on_dead`` (the worker exits
non-zero and its supervisor restarts it) instead of running zombie leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.observe import metrics
from pgqueue.types import Lease
from pgqueue.worker.connection import LazyConnection

log = logging.getLogger(__name__)

# The exit status of a process whose worker lost its heartbeat past the lease
# window (``pgqueue worker``, ``pgqueue serve``): distinct from 1 (a crash)
# and 2 (bad usage), so logs and supervisors can tell why it went.
EXIT_UNHEALTHY = 3

# The lease window a worker assumes when not told one (no --stale-after): the
# database's default pgqueue.lease_timeout.
DEFAULT_LEASE_SECONDS = 20.0

# How long a process whose worker lost its heartbeat gets to shut down in
# order before it exits anyway (HeartbeatConfig.exit_deadline).
UNHEALTHY_EXIT_DEADLINE = 15.0


@dataclass
class HeartbeatConfig:
    interval: float = 5.0
    # Heartbeats are not worth an fsync each: a beat lost in a crash only
    # makes a lease look a few seconds older.
    synchronous_commit: bool = False
    reconnect_delay_max: float = 2.0
    # Bounds each connect and each beat: a database that stops answering
    # (a dropped network, a frozen host) must not stall the thread past the
    # lease window, or the liveness check below would never run.
    timeout: float = 5.0
    # The lease window (the sweeper's stale-after). No beat for longer than
    # this: the worker is dead to the queue and on_dead is called. None:
    # never.
    lease_timeout: float | None = None
    # For processes that own their lifetime (the CLI's): once dead, exit
    # with EXIT_UNHEALTHY after this long even if the orderly shutdown is
    # still stuck -- on a database that stopped answering, cancelled runs
    # can wait on it for a long time, and there is nothing left to save
    # (their leases are gone). None: never (a library must not exit).
    exit_deadline: float | None = None


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
        on_dead: Callable[[float], None] | None = None,
        config: HeartbeatConfig | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._leases = leases
        self._concurrency = concurrency
        self._on_lost = on_lost
        self._on_dead = on_dead
        self.config = config or HeartbeatConfig()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Heartbeats are not worth an fsync each (see HeartbeatConfig).
        settings = {} if self.config.synchronous_commit else {"synchronous_commit": "off"}
        self._conn = LazyConnection(dsn, server_settings=settings)
        self.beats = 0
        self.last_beat_monotonic: float | None = None
        # Silence is counted from start() until the first beat lands.
        self._alive_since = time.monotonic()
        self.dead = False

    def _beat_timeout(self) -> float:
        """``config.timeout``, but a beat that hangs must not run far past
        the lease window: the liveness check comes after it."""
        window = self.config.lease_timeout
        if window is None:
            return self.config.timeout
        return min(self.config.timeout, max(window - self.silent_for(), 0.0) + 1.0)

    async def run_once(self) -> HeartbeatResult:
        """Renew every held lease once; report those no longer held."""
        held = self._leases.snapshot()
        conn = await self._conn.get(connect_timeout=self._beat_timeout())
        rows = await conn.fetch(
            queries.heartbeat,
            self._worker_id,
            [lease.run_id for lease in held],
            [lease.attempt for lease in held],
            socket.gethostname(),
            os.getpid(),
            self._concurrency,
            timeout=self._beat_timeout(),
        )
        renewed = {r["run_id"] for r in rows}
        # The same run can appear twice (a stale attempt still unwinding and
        # the current one): the UPDATE matched only the current attempt.
        current = {(r["run_id"], r["attempt"]) for r in rows}
        lost = {lease for lease in held if (lease.run_id, lease.attempt) not in current}
        result = HeartbeatResult(renewed, lost)
        self.beats += 1
        metrics.HEARTBEATS.inc()
        self.last_beat_monotonic = time.monotonic()
        if result.lost and self._on_lost is not None:
            self._on_lost(result.lost)
        return result

    def silent_for(self) -> float:
        """Seconds since the last beat landed (or since start, before one did)."""
        last = self.last_beat_monotonic
        return time.monotonic() - (
            self._alive_since if last is None else max(last, self._alive_since)
        )

    def check_alive(self) -> bool:
        """False, and ``on_dead`` called once, when the worker has not
        heartbeated for longer than its lease window."""
        window = self.config.lease_timeout
        if self.dead:
            return False
        if window is None or self.silent_for() <= window:
            return True
        self.dead = True
        silent = self.silent_for()
        log.error(
            "no heartbeat for %.1f s, longer than the %.1f s lease: this worker's runs are "
            "being handed to others; exiting so that a supervisor restarts it",
            silent,
            window,
            extra={"event": "heartbeat_dead", "silent_seconds": round(silent, 1)},
        )
        if self._on_dead is not None:
            self._on_dead(silent)
        if self.config.exit_deadline is not None:
            # A thread, not the event loop: it fires even if the loop is stuck.
            timer = threading.Timer(
                self.config.exit_deadline, _exit_now, (self.config.exit_deadline,)
            )
            timer.daemon = True
            timer.start()
        return False

    def start(self) -> None:
        self._stop.clear()
        self._alive_since = time.monotonic()
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
                    log.warning(
                        "heartbeat failed: %s: %s",
                        type(exc).__name__,
                        exc,
                        extra={"event": "heartbeat_failed"},
                    )
                    self._conn.drop()
                    wait = delay
                    delay = min(delay * 2, self.config.reconnect_delay_max)
                    if self.check_alive() and self.config.lease_timeout is not None:
                        # One more try right as the lease runs out, so that
                        # death is declared on time, not a backoff step late.
                        remaining = self.config.lease_timeout - self.silent_for()
                        wait = min(wait, max(remaining, 0.0) + 0.05)
                # This loop serves nothing else: block on the threading event
                # so that stop() wakes it at once.
                self._stop.wait(wait)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the heartbeat's connection (bounded). The thread does this
        when it stops; a caller driving ``run_once`` itself calls it."""
        await self._conn.close(grace=self.config.timeout)


def _exit_now(deadline: float) -> None:
    log.error(
        "still shutting down %.0f s after losing the heartbeat; exiting now",
        deadline,
        extra={"event": "heartbeat_dead_exit"},
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(EXIT_UNHEALTHY)

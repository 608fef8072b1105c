"""What a scrape gets, and a small HTTP server for a process without one.

``pgqueue serve`` and ``pgqueue server`` answer ``GET /metrics`` on their
own port (``server/routes/metrics.py``). A standalone ``pgqueue worker`` has
no HTTP server: ``--metrics-port`` starts ``MetricsServer``, which answers
``GET /metrics`` and ``GET /ok`` on plain asyncio streams and nothing else
(prometheus_client's own server runs in a thread, where the database
gauges, read with asyncpg, cannot be).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from pgqueue.db import pools as db
from pgqueue.db.sql import queries
from pgqueue.observe import database
from pgqueue.observe.metrics import PoolCollector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# How long a scrape waits for the database before reporting it down.
DATABASE_TIMEOUT = 2.0
# A client that sends no complete request head within this is dropped.
READ_TIMEOUT = 5.0

# prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR), set
# by the CLI: the instruments of every process sharing it are merged.
_multiprocess_dir: list[str] = []


def use_multiprocess_dir(path: str | None) -> None:
    """Merge the counters of every process writing to ``path`` (None: this
    process's only). prometheus_client itself reads PROMETHEUS_MULTIPROC_DIR
    when it is imported; this must name the same directory."""
    _multiprocess_dir[:] = [path] if path else []


class _Everything(Collector):
    """A registry's metrics, as one collector of a scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def _own_registry() -> CollectorRegistry:
    if not _multiprocess_dir:
        return REGISTRY
    merged = CollectorRegistry()
    MultiProcessCollector(merged, path=_multiprocess_dir[0])
    return merged


async def exposition(pool: asyncpg.Pool) -> bytes:
    """The Prometheus text of this process (or, in multiprocess mode, of
    every process on the directory), its pools, and the database's gauges
    read now through ``pool``."""
    snapshot = await database.read(pool, DATABASE_TIMEOUT)
    scrape = CollectorRegistry()
    scrape.register(_Everything(_own_registry()))
    scrape.register(PoolCollector())
    scrape.register(snapshot)
    return generate_latest(scrape)


async def database_ok(pool: asyncpg.Pool, seconds: float = DATABASE_TIMEOUT) -> bool:
    try:
        async with pool.acquire(timeout=seconds) as conn:
            await conn.fetchval(queries.ping, timeout=seconds)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


class MetricsServer:
    """``GET /metrics`` and ``GET /ok`` for a worker process. ``load``: the
    worker pool's {"running": n, "slots": m}, for /ok."""

    def __init__(
        self,
        dsn: str,
        host: str,
        port: int,
        load: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self._dsn = dsn
        self._host = host
        self._port = port
        self._load = load
        self._server: asyncio.Server | None = None
        self._pool: asyncpg.Pool | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Listen; returns the port bound (the one asked for, or any free
        one for 0). No connection is made until the first scrape."""
        self._pool = await db.create_pool(self._dsn, min_size=0, max_size=1, name="metrics")
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), READ_TIMEOUT)
        if self._pool is not None:
            await db.close_pool(self._pool)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # nothing sensible came: hang up
            except ValueError:
                status, kind, body = 400, "text/plain", b"bad request line\n"
            else:
                try:
                    status, kind, body = await self._answer(method, target.split("?", 1)[0])
                except Exception:  # noqa: BLE001 - one failed scrape, not the server
                    log.exception("metrics request failed", extra={"event": "metrics_failed"})
                    status, kind, body = 500, "text/plain", b"internal error\n"
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except (OSError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        assert self._pool is not None
        if path not in ("/metrics", "/ok"):
            return 404, "text/plain", b"not found: this port serves /metrics and /ok\n"
        if method != "GET":
            return 405, "text/plain", b"method not allowed: use GET\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, await exposition(self._pool)
        up = await database_ok(self._pool)
        report: dict[str, object] = {"ok": up, "database": {"ok": up}}
        if self._load is not None:
            report["workers"] = self._load()
        return (200 if up else 503), "application/json", json.dumps(report).encode()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

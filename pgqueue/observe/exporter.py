"""What a scrape gets, and a small HTTP server for a process without one.

``pgqueue serve`` and ``pgqueue server`` answer ``GET /metrics`` on their
own port (``server/routes/metrics.py``). A standalone ``pgqueue worker`` has
no HTTP server: ``--metrics-port`` starts ``MetricsServer``, which answers
``GET /metrics`` and ``GET /ok`` and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import asyncpg
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pgqueue.db import pools as db
from pgqueue.db.sql import queries
from pgqueue.observe import database
from pgqueue.observe.metrics import PoolCollector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# How long a scrape waits for the database before reporting it down.
DATABASE_TIMEOUT = 2.0

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


class _InLoop(uvicorn.Server):
    """uvicorn in the worker's own event loop. The worker handles SIGINT and
    SIGTERM itself (drain, then hand back): this server must not take them."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


class MetricsServer:
    """``GET /metrics`` and ``GET /ok`` for a worker process, a small
    Starlette app under uvicorn in the worker's loop (prometheus_client's
    own server runs in a thread, where the database gauges, read with
    asyncpg, cannot be). ``load``: the worker pool's {"running": n,
    "slots": m}, for /ok."""

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
        self._server: _InLoop | None = None
        self._serving: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Listen; returns the port bound (the one asked for, or any free
        one for 0). No connection is made until the first scrape."""
        self._pool = await db.create_pool(self._dsn, min_size=0, max_size=1, name="metrics")
        # Bound here, not by uvicorn: the caller learns the port at once, and
        # a port taken is an OSError to report, not a log line and an exit.
        sock = socket.create_server((self._host, self._port))
        self.port = int(sock.getsockname()[1])
        app = Starlette(
            routes=[
                Route("/metrics", self._metrics, methods=["GET"]),
                Route("/ok", self._ok, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, lifespan="off", log_config=None, log_level="warning", access_log=False
        )
        self._server = _InLoop(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        return self.port

    async def stop(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        if self._pool is not None:
            await db.close_pool(self._pool)

    async def _metrics(self, _request: Request) -> Response:
        assert self._pool is not None
        return Response(await exposition(self._pool), media_type=CONTENT_TYPE)

    async def _ok(self, _request: Request) -> Response:
        assert self._pool is not None
        up = await database_ok(self._pool)
        report: dict[str, object] = {"ok": up, "database": {"ok": up}}
        if self._load is not None:
            report["workers"] = self._load()
        return JSONResponse(report, status_code=200 if up else 503)

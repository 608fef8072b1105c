"""Connections and pools for pgqueue's own use.

asyncpg's pool resets each connection when it is released (``RESET ALL``,
``UNLISTEN *``, ...): one more round trip after every statement. pgqueue's
pools are private and run single autocommit statements that leave no
session state behind, so that reset is pure latency on the claim and
completion paths and is skipped. Do not hand these pools to code that sets
session state.

While the database is down, asyncpg's pools log every failed attempt to
reconnect their minimum of connections as a warning with a full traceback
(a dozen lines, each second, per pool). ``_OneLineFloorWarnings`` keeps the
warning and its cause on one line.

Every connection made here has a connect timeout (asyncpg's default is 60 s:
a database host that drops packets would stall a worker's claim loop, its
heartbeat or an HTTP request for a minute), and is a ``Connection`` that
reports asyncpg's protocol-state error after a server-side termination as
the lost connection it is (see below).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from pgqueue.observe import metrics

# Long enough for a loaded server's fork + auth; short enough that a dead
# host is noticed well within a lease window.
CONNECT_TIMEOUT = 5.0


# How asyncpg and the OS say that the database is not there (restarting,
# refusing connections while it starts or stops, a dropped connection).
# OperatorInterventionError: "cannot connect now" while it starts or stops,
# and "terminating connection" (admin or crash shutdown) on a restart.
DATABASE_AWAY = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
)


# How asyncpg's warning begins (asyncpg.pool.Pool._maintain_min_size).
FLOOR_WARNING = "Failed to restore the pool connection "


class _OneLineFloorWarnings(logging.Filter):
    """asyncpg.pool's "Failed to restore the pool connection floor" with its
    exception's type and message instead of its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith(FLOOR_WARNING):
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_OneLineFloorWarnings())


def _reports_loss(method: Any) -> Any:
    async def wrapper(self: Connection, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except asyncpg.InternalClientError as exc:
            self.terminate()
            raise asyncpg.ConnectionDoesNotExistError(
                f"connection lost mid-operation: {exc}"
            ) from exc

    return wrapper


class Connection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection whose death always looks like a lost connection.

    When PostgreSQL terminates a session (restart, failover,
    ``pg_terminate_backend``) its FATAL error can arrive just before the
    socket closes. A statement issued in between fails with
    ``InternalClientError: cannot switch to state 12; another operation (2)
    is in progress`` (MagicStack/asyncpg#1069), which callers that retry
    ``OSError``/``PostgresError``/``InterfaceError`` do not expect: it
    killed a worker's claim loop and its sweeper on a PostgreSQL restart.
    Here it becomes ``ConnectionDoesNotExistError`` and the connection is
    dropped, so pools replace it and loops retry as for any lost connection.
    (The statement methods pgqueue uses; pool.fetch & co. call these.)
    """

    execute = _reports_loss(asyncpg.Connection.execute)
    executemany = _reports_loss(asyncpg.Connection.executemany)
    fetch = _reports_loss(asyncpg.Connection.fetch)
    fetchval = _reports_loss(asyncpg.Connection.fetchval)
    fetchrow = _reports_loss(asyncpg.Connection.fetchrow)
    fetchmany = _reports_loss(asyncpg.Connection.fetchmany)


async def _keep_session(_conn: asyncpg.Connection[Any]) -> None:
    return None


async def connect(
    dsn: str,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    server_settings: dict[str, str] | None = None,
) -> Connection:
    """A single connection (LISTEN, claims, heartbeats), with a connect timeout."""
    conn = await asyncpg.connect(
        dsn,
        timeout=connect_timeout,
        server_settings=server_settings or {},
        connection_class=Connection,
    )
    assert isinstance(conn, Connection)
    return conn


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 3,
    server_settings: dict[str, str] | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    command_timeout: float | None = None,
    name: str = "pgqueue",
) -> asyncpg.Pool[Any]:
    """A pool of ``Connection``. ``command_timeout`` bounds every statement
    (None: unbounded; the HTTP server sets one so a request never hangs on
    a database that stopped answering). ``name``: its role, the ``pool``
    label of its lg_api_pg_pool_* gauges."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings or {},
        reset=_keep_session,
        timeout=connect_timeout,
        command_timeout=command_timeout,
        connection_class=Connection,
    )
    assert pool is not None
    metrics.watch_pool(pool, name)
    return pool


async def close_pool(pool: asyncpg.Pool[Any], grace: float = CONNECT_TIMEOUT) -> None:
    """Close gracefully if the server answers in time, else drop the sockets:
    a pool's graceful close waits on every connection's goodbye, forever if
    the database stopped answering, and shutdown must stay bounded."""
    metrics.forget_pool(pool)
    try:
        await asyncio.wait_for(pool.close(), grace)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        with contextlib.suppress(Exception):
            pool.terminate()

"""One plain connection, opened when first needed and again after an error.

The claim loop and the heartbeat each run their statements one at a time on
a connection of their own: no pool hop on the wake-to-claim path, and a
heartbeat that does not wait behind the worker's other traffic. After a
failed statement the connection's state is unknown (a half-read reply, a
server that went away), so it is dropped at once and the next use connects
afresh. Closing is bounded: a database that stopped answering must not hold
up a worker's exit (a liveness exit happens exactly then).
"""

from __future__ import annotations

import asyncpg

from pgqueue.db import pools as db


class LazyConnection:
    def __init__(self, dsn: str, server_settings: dict[str, str] | None = None) -> None:
        self._dsn = dsn
        self._server_settings = server_settings
        self._conn: asyncpg.Connection | None = None

    async def get(self, connect_timeout: float = db.CONNECT_TIMEOUT) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            # db.connect: a connect timeout, and asyncpg's protocol-state error
            # after a server restart surfaces as a lost connection (retried).
            self._conn = await db.connect(
                self._dsn, connect_timeout=connect_timeout, server_settings=self._server_settings
            )
        return self._conn

    def drop(self) -> None:
        """Forget the connection after a failure, without a goodbye."""
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def close(self, grace: float = db.CONNECT_TIMEOUT) -> None:
        """Close politely if the server answers within ``grace`` seconds,
        else drop the socket."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.close(timeout=grace)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            conn.terminate()

"""pgqueue's statements on a psycopg connection, as written.

Every statement in ``pgqueue/db/sql`` uses PostgreSQL's native ``$1``
placeholders, which asyncpg sends as they are. psycopg's ordinary cursors
expect ``%s`` and rewrite the text into ``$1`` on every call; a raw cursor
(psycopg >= 3.2) sends the text unchanged, so one text serves both drivers,
and the event-write path skips a conversion that showed up in its CPU
profile. Parameters are adapted exactly as for ``%s`` (each value's own
dumper and type), so what the server receives is the same as before.

The cursor is a plain one on the caller's connection: inside
``conn.pipeline()`` its statement joins the pipeline (no round trip of its
own), and it returns rows with the connection's row factory (``dict_row``
on a run's connection).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, AsyncRawCursor
from psycopg.rows import Row


async def execute(conn: AsyncConnection[Row], statement: str, *params: Any) -> AsyncRawCursor[Row]:
    """Send ``statement`` (a ``queries.NAME``) with positional ``params`` for
    ``$1``, ``$2``, ...; return the cursor to read its rows from, as
    ``conn.execute`` does."""
    cur = AsyncRawCursor(conn, row_factory=conn.row_factory)
    # No parameters: None, as conn.execute(query) sends it (no Bind values).
    return await cur.execute(statement, params or None)

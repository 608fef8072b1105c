"""Connection pools for pgqueue's own use.

asyncpg's pool resets each connection when it is released (``RESET ALL``,
``UNLISTEN *``, ...): one more round trip after every statement. pgqueue's
pools are private and run single autocommit statements that leave no
session state behind, so that reset is pure latency on the claim and
completion paths and is skipped. Do not hand these pools to code that sets
session state.
"""

from __future__ import annotations

from typing import Any

import asyncpg


async def _keep_session(_conn: asyncpg.Connection[Any]) -> None:
    return None


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 3,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool[Any]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings or {},
        reset=_keep_session,
    )
    assert pool is not None
    return pool

"""A page of search results and how many match in all, as the searches of
assistants and threads answer it (the X-Pagination headers need both).

Each search statement returns the total on every row (a window count), so
one round trip serves; only a page past the last one, which has no row to
carry it, asks the count statement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from pgqueue.types import Queryable


class Search(Protocol):
    """What a search statement takes: its filters, then the order and page."""

    sort_by: str
    sort_order: str
    limit: int
    offset: int

    def filters(self) -> tuple[Any, ...]: ...


async def search_page(
    db: Queryable,
    search_sql: str,
    count_sql: str,
    query: Search,
    convert: Callable[[asyncpg.Record], dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """One page (each row through ``convert``) and how many match in all."""
    rows = await db.fetch(
        search_sql, *query.filters(), query.sort_by, query.sort_order, query.limit, query.offset
    )
    if rows:
        total = int(rows[0]["total"])
    else:  # past the last page: no row carries the total
        total = int(await db.fetchval(count_sql, *query.filters()))
    return [convert(r) for r in rows], total

"""Threads as the HTTP API creates, reads, searches, copies and deletes
them. Their state (read, listed, updated through the thread's graph) is in
``pgqueue.thread_state``.

Deleting a thread that has live runs deletes them too: pending runs never
start; a running run's worker is told to stop, and loses its lease with the
row, so nothing it still tries to write (checkpoint, event, final status)
commits. Updating the state of a thread with a live run is refused
(``Conflict``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

from pgqueue.db import encoding
from pgqueue.db.encoding import loads
from pgqueue.db.sql import queries
from pgqueue.errors import Conflict, NotFound
from pgqueue.resources.pages import search_page
from pgqueue.resources.visibility import EVERYTHING, Visible
from pgqueue.types import Queryable

DEADLOCK_ATTEMPTS = 3
T = TypeVar("T")


def dumps(value: Any) -> str | None:
    """JSON text for a jsonb parameter (graph values included: messages and
    other models are written as their dump)."""
    return None if value is None else encoding.dumps(value)


def thread_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "thread_id": row["thread_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "state_updated_at": row["state_updated_at"],
        "metadata": loads(row["metadata"]),
        "status": row["status"],
        "config": loads(row["config"]),
        "values": loads(row["state_values"]),
        "interrupts": loads(row["interrupts"]),
        "error": loads(row["error"]),
    }


# -- the thread itself -------------------------------------------------------


@dataclass(frozen=True)
class TTL:
    """A thread's time to live: ``strategy`` once ``minutes`` have passed
    since its last update (migration 0011)."""

    minutes: float
    strategy: str = "delete"


def ttl_json(row: asyncpg.Record) -> dict[str, Any] | None:
    """What ``GET /threads/{id}?include=ttl`` shows: None without a TTL."""
    if row["ttl_minutes"] is None:
        return None
    return {
        "strategy": row["ttl_strategy"],
        "ttl_minutes": row["ttl_minutes"],
        "expires_at": row["expires_at"],
    }


async def create(
    db: Queryable,
    *,
    thread_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
    if_exists: str = "raise",
    ttl: TTL | None = None,
    visible: Visible,
) -> dict[str, Any]:
    thread, _ = await insert_thread(db, thread_id or uuid4(), metadata, if_exists, visible, ttl)
    return thread


async def insert_thread(
    db: Queryable,
    thread_id: UUID,
    metadata: dict[str, Any] | None,
    if_exists: str,
    visible: Visible,
    ttl: TTL | None = None,
) -> tuple[dict[str, Any], bool]:
    """The new thread, or (do_nothing) the existing one if ``visible``
    shows it; a taken id the request may not see is a conflict, never
    another user's thread. No ``ttl``: the deployment's default, if any."""
    row = await db.fetchrow(
        queries.create_thread,
        thread_id,
        json.dumps(metadata or {}),
        ttl.strategy if ttl else None,
        ttl.minutes if ttl else None,
    )
    if row is not None:
        return thread_json(row), True
    if if_exists == "do_nothing":
        row = await db.fetchrow(queries.get_thread, thread_id, visible.filter)
        if row is not None:
            return thread_json(row), False
    raise Conflict(f"thread {thread_id} already exists")


async def get(
    db: Queryable, thread_id: UUID, *, visible: Visible, include_ttl: bool = False
) -> dict[str, Any]:
    row = await db.fetchrow(queries.get_thread, thread_id, visible.filter)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    thread = thread_json(row)
    if include_ttl:
        thread["ttl"] = ttl_json(row)
    return thread


async def update(
    db: Queryable,
    thread_id: UUID,
    metadata: dict[str, Any],
    *,
    visible: Visible,
    ttl: TTL | None = None,
) -> dict[str, Any]:
    row = await db.fetchrow(
        queries.update_thread_metadata,
        thread_id,
        json.dumps(metadata),
        visible.filter,
        ttl.strategy if ttl else None,
        ttl.minutes if ttl else None,
    )
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_json(row)


async def delete(pool: asyncpg.Pool, thread_id: UUID, *, visible: Visible) -> None:
    async def work(conn: asyncpg.Connection) -> list[UUID]:
        return await delete_many(conn, [thread_id], visible=visible)

    if not await in_transaction(pool, work):
        raise NotFound(f"thread {thread_id} not found")


async def in_transaction(
    pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """``work`` in a transaction, again if it deadlocked. Deleting locks a
    thread's live runs, then the thread (as a worker's final write does); a
    submit that cancels runs (multitask interrupt/rollback) locks the other
    way round, so the two can deadlock: PostgreSQL aborts one, and this one
    tries again."""
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_ATTEMPTS:
                raise Conflict("deadlocked with concurrent runs on the thread; retry") from None
    raise AssertionError("unreachable")


async def delete_many(
    conn: asyncpg.Connection, thread_ids: list[UUID], *, visible: Visible
) -> list[UUID]:
    """Delete threads with their runs and checkpoints, in the caller's
    transaction; returns the ids that existed (and ``visible`` showed).

    Live runs are locked first (run before thread: the order workers lock
    in), which also holds off their checkpoint writes; then the threads go
    (their runs by cascade, taking a running run's lease away); then the
    checkpoints, in a later statement, so that it sees every checkpoint
    committed before the locks were granted."""
    if thread_ids and not visible.everything:
        rows = await conn.fetch(queries.visible_threads, thread_ids, visible.filter)
        thread_ids = [r["thread_id"] for r in rows]
    if not thread_ids:
        return []
    await conn.fetch(queries.lock_thread_live_runs, thread_ids)
    deleted = [r["thread_id"] for r in await conn.fetch(queries.delete_threads, thread_ids)]
    if deleted:
        await conn.execute(queries.delete_thread_checkpoints, [str(t) for t in deleted])
    return deleted


@dataclass
class ThreadSearch:
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[UUID] | None = None
    status: str | None = None
    limit: int = 10
    offset: int = 0
    sort_by: str = "created_at"
    sort_order: str = "desc"
    # Set by search() and count() from their required argument.
    visible: Visible = EVERYTHING

    def filters(self) -> tuple[Any, ...]:
        return (
            dumps(self.metadata),
            dumps(self.values),
            self.ids,
            self.status,
            self.visible.filter,
        )


async def search(
    db: Queryable, query: ThreadSearch, *, visible: Visible
) -> tuple[list[dict[str, Any]], int]:
    """One page of threads and how many match in all."""
    query = replace(query, visible=visible)
    return await search_page(db, queries.search_threads, queries.count_threads, query, thread_json)


async def count(db: Queryable, query: ThreadSearch, *, visible: Visible) -> int:
    query = replace(query, visible=visible)
    return int(await db.fetchval(queries.count_threads, *query.filters()))


async def copy(db: Queryable, thread_id: UUID, *, visible: Visible) -> dict[str, Any]:
    """A new thread with this one's metadata, values and checkpoints."""
    row = await db.fetchrow(queries.copy_thread, thread_id, uuid4(), visible.filter)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return thread_json(row)


async def prune(
    pool: asyncpg.Pool,
    checkpointer: AsyncPostgresSaver,
    thread_ids: list[UUID],
    strategy: str,
    *,
    visible: Visible,
) -> int:
    """``delete``: the threads go, as with ``delete``. ``keep_latest``: the
    threads stay with only their latest checkpoints. Returns how many of
    the threads existed."""
    if strategy == "delete":

        async def work(conn: asyncpg.Connection) -> list[UUID]:
            return await delete_many(conn, thread_ids, visible=visible)

        return len(await in_transaction(pool, work))
    found, _ = await search(
        pool, ThreadSearch(ids=thread_ids, limit=len(thread_ids) or 1), visible=visible
    )
    try:
        await checkpointer.aprune([str(t["thread_id"]) for t in found], strategy="keep_latest")
    except NotImplementedError as exc:
        raise Conflict(f"cannot keep only the latest checkpoints: {exc}") from None
    except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
        # A run (or another prune) wrote to one of the threads meanwhile.
        raise Conflict("the threads changed while being pruned; retry") from None
    return len(found)


# -- search extracts: "values.messages[-1]", "metadata.user.name" ------------

_STEP = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(-?\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """The keys and indexes of a dotted path; ValueError names the problem."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None or (pos == 0 and match.group(0).startswith(".")):
            raise ValueError(f"cannot parse {path!r} at position {pos}")
        key, index = match.groups()
        steps.append(key if key is not None else int(index))
        pos = match.end()
    if not steps or not isinstance(steps[0], str):
        raise ValueError(f"{path!r} must start with a field name")
    return steps


def extract(doc: Any, steps: list[str | int]) -> Any:
    """The value at ``steps`` in ``doc``, or None where the path leads nowhere."""
    for step in steps:
        if isinstance(step, int) and isinstance(doc, list) and -len(doc) <= step < len(doc):
            doc = doc[step]
        elif isinstance(step, str) and isinstance(doc, dict):
            doc = doc.get(step)
        else:
            return None
    return doc

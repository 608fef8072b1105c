"""Crons as the HTTP API stores them and the scheduler reads them.

A cron row holds its schedule (a five-field cron expression or an alias
such as ``@hourly``, read in UTC unless the cron names a timezone), an
optional end time, the next time it is due, and the run to create at each
tick as ``payload``: the run request's fields as the client sent them, so
the server validates them with the same model it uses for runs. The
settings the table has no column for, ``enabled`` and ``timezone``, travel
in the payload too (the run request ignores them).

This module checks what only a schedule or the database can tell (the
expression parses, the thread exists, the row is there); shapes are the
server's business.

Every function a request reaches takes the Auth's answer for it
(``pgqueue.resources.visibility``; ``EVERYTHING`` without one), applied in
SQL to the cron's metadata: a cron it hides is answered as a missing one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from croniter import CroniterError, croniter

from pgqueue.db.encoding import loads
from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.errors import Invalid, NotFound
from pgqueue.resources.visibility import Visible
from pgqueue.types import Queryable

# Cron settings kept in the payload (see the module docstring).
ENABLED = "enabled"
TIMEZONE = "timezone"

# search: the sort keys the SDK offers; anything else is refused earlier.
SORT_KEYS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "created_at",
    "updated_at",
    "next_run_date",
    "end_time",
)


def _filter(metadata: dict[str, Any] | None) -> str | None:
    """A metadata containment filter as a query parameter; None matches all."""
    return json.dumps(metadata) if metadata else None


def zone(timezone: str | None) -> ZoneInfo | None:
    if timezone is None:
        return None
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a folder of the tz database ("Europe")
        # fails to open as a file instead of being "not found".
        raise Invalid(
            "timezone", f"{timezone!r} is not an IANA timezone (e.g. 'Europe/Paris')"
        ) from None


def next_run(schedule: str, after: datetime, timezone: str | None = None) -> datetime:
    """The first tick of ``schedule`` strictly after ``after``, in UTC. The
    expression is read in ``timezone`` (UTC when None), so "0 9 * * *" in
    America/New_York follows daylight saving time."""
    tz = zone(timezone)
    start = after.astimezone(tz or UTC)
    try:
        fire = croniter(schedule, start).get_next(datetime)
    except CroniterError as exc:
        raise Invalid("schedule", f"{schedule!r} cannot be scheduled: {exc}") from None
    return fire.astimezone(UTC)  # type: ignore[no-any-return]


def check_schedule(schedule: str) -> str:
    """The schedule, stripped, if it is a five-field expression (or an
    ``@alias``) that fires at least once; else ``Invalid``."""
    text = schedule.strip()
    if not text:
        raise Invalid("schedule", "must not be empty")
    fields = text.split()
    # croniter also takes 6 and 7 fields (seconds, years); the platform's
    # schedules are minute-grained, and a seconds field would be a surprise.
    if not text.startswith("@") and len(fields) != 5:
        raise Invalid(
            "schedule",
            f"{schedule!r} has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or an alias such as @hourly",
        )
    if not croniter.is_valid(text):
        raise Invalid("schedule", f"{schedule!r} is not a valid cron expression")
    next_run(text, datetime.now(UTC))  # impossible dates (Feb 30) fail here
    return text


def aware(moment: datetime) -> datetime:
    """Timestamps without an offset are read as UTC (the SDK sends
    ``isoformat()`` of whatever the caller passed)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cron_json(row: asyncpg.Record) -> dict[str, Any]:
    """A cron as the SDK's ``Cron`` type shows it."""
    payload = loads(row["payload"]) or {}
    stateless = row["thread_id"] is None
    return {
        "cron_id": row["cron_id"],
        "assistant_id": row["assistant_id"],
        "thread_id": row["thread_id"],
        "on_run_completed": payload.get("on_completion", "delete") if stateless else None,
        "end_time": row["end_time"],
        "schedule": row["schedule"],
        "timezone": payload.get(TIMEZONE),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "payload": payload,
        "user_id": row["user_id"],
        "next_run_date": row["next_run_at"],
        "metadata": loads(row["metadata"]) or {},
        "enabled": payload.get(ENABLED, True) is not False,
    }


@dataclass
class NewCron:
    assistant_id: UUID
    # None: every tick runs on a new thread.
    thread_id: UUID | None
    schedule: str
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    end_time: datetime | None = None
    user_id: str | None = None
    # Who created it (as authentication made them): its runs run as them.
    auth_user: dict[str, Any] | None = None


async def create(db: Queryable, cron: NewCron, *, thread_visible: Visible) -> dict[str, Any]:
    """Store a cron, due at its schedule's next tick from now. A thread
    cron's thread must exist and be one ``thread_visible`` (the request's
    threads.create_run filter) shows, else ``NotFound``. An insert reads no
    cron, so no crons filter applies here."""
    schedule = check_schedule(cron.schedule)
    due = next_run(schedule, datetime.now(UTC), cron.payload.get(TIMEZONE))
    try:
        row = await db.fetchrow(
            queries.insert_cron,
            uuid7(),
            cron.assistant_id,
            cron.thread_id,
            schedule,
            json.dumps(cron.payload),
            json.dumps(cron.metadata),
            cron.user_id,
            aware(cron.end_time) if cron.end_time else None,
            due,
            None if cron.auth_user is None else json.dumps(cron.auth_user),
            thread_visible.filter,
        )
    except asyncpg.ForeignKeyViolationError:
        # The thread went between the check and the insert.
        row = None
    if row is None:
        raise NotFound(f"thread {cron.thread_id} not found")
    return cron_json(row)


# update(): leave end_time as it is.
KEEP = object()


async def update(
    pool: asyncpg.Pool,
    cron_id: UUID,
    *,
    changes: dict[str, Any],
    schedule: str | None = None,
    end_time: Any = KEEP,
    check: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
    add_metadata: dict[str, Any] | None = None,
    visible: Visible,
) -> dict[str, Any]:
    """Merge ``changes`` into the cron's payload (``check`` may validate the
    merged payload with the schedule and return it normalized), and move the
    next tick when the schedule, the timezone or ``enabled`` changed.
    ``metadata`` in ``changes`` replaces the cron's; ``add_metadata`` (keys
    an authorization handler set on a PATCH that sent none) merges into it.
    A cron ``visible`` hides is ``NotFound``."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.lock_cron, cron_id, visible.filter)
        if row is None:
            raise NotFound(f"cron {cron_id} not found")
        old = loads(row["payload"]) or {}
        payload = {**old, **changes}
        if add_metadata:
            payload["metadata"] = {**(payload.get("metadata") or {}), **add_metadata}
        if row["thread_id"] is not None:
            # on_completion is about a stateless cron's temporary threads.
            payload.pop("on_completion", None)
        new_schedule = check_schedule(schedule) if schedule is not None else row["schedule"]
        if check is not None:
            payload = check(payload, new_schedule)
        due = row["next_run_at"]
        re_enabled = old.get(ENABLED, True) is False and payload.get(ENABLED, True) is not False
        if (
            new_schedule != row["schedule"]
            or old.get(TIMEZONE) != payload.get(TIMEZONE)
            or re_enabled
        ):
            due = next_run(new_schedule, datetime.now(UTC), payload.get(TIMEZONE))
        end = row["end_time"] if end_time is KEEP else end_time
        metadata = payload.get("metadata") or {}
        updated = await conn.fetchrow(
            queries.update_cron,
            cron_id,
            new_schedule,
            json.dumps(payload),
            json.dumps(metadata),
            aware(end) if end else None,
            due,
        )
    assert updated is not None
    return cron_json(updated)


async def delete(db: Queryable, cron_id: UUID, *, visible: Visible) -> None:
    if await db.fetchval(queries.delete_cron, cron_id, visible.filter) is None:
        raise NotFound(f"cron {cron_id} not found")


async def search(
    db: Queryable,
    *,
    assistant_id: UUID | None = None,
    thread_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
    enabled: bool | None = None,
    sort_by: str = "created_at",
    sort_order: str = "desc",
    limit: int = 10,
    offset: int = 0,
    visible: Visible,
) -> list[dict[str, Any]]:
    if sort_by not in SORT_KEYS:
        raise ValueError(f"sort_by must be one of {SORT_KEYS}, got {sort_by!r}")
    rows = await db.fetch(
        queries.search_crons,
        assistant_id,
        thread_id,
        _filter(metadata),
        enabled,
        sort_by,
        "asc" if sort_order == "asc" else "desc",
        limit,
        offset,
        visible.filter,
    )
    return [cron_json(r) for r in rows]


async def count(
    db: Queryable,
    *,
    assistant_id: UUID | None = None,
    thread_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
    visible: Visible,
) -> int:
    value = await db.fetchval(
        queries.count_crons,
        assistant_id,
        thread_id,
        _filter(metadata),
        visible.filter,
    )
    return int(value or 0)

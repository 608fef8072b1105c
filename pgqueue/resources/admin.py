"""What an operator reads about runs across every thread: a filtered
listing, one run in full, and the queue's vital signs.

No Auth applies here: these are the command line's reads (``pgqueue runs``,
``pgqueue stats``), made by whoever holds the database URL. Filters and
their ages are resolved against the database's clock, once per command, so
every batch of a bulk operation sees the same cut-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pgqueue.db.encoding import loads
from pgqueue.db.sql import queries
from pgqueue.types import Queryable

STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")
# What a retry puts back: the runs that ended without success.
RETRYABLE = ("error", "timeout", "interrupted")
# What a cancel stops.
CANCELLABLE = ("pending", "running")


@dataclass(frozen=True)
class RunFilter:
    """Which runs: each field None means no condition. Ages count back from
    the database's now."""

    statuses: tuple[str, ...] | None = None
    thread_id: UUID | None = None
    assistant_id: UUID | None = None
    graph_id: str | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.statuses or ()) - set(STATUSES))
        if unknown:
            raise ValueError(f"unknown status {', '.join(unknown)}; one of {', '.join(STATUSES)}")

    @property
    def empty(self) -> bool:
        return self == RunFilter()

    def params(self, now: datetime) -> tuple[Any, ...]:
        """The shared filter parameters $1-$6 of admin.sql."""
        return (
            list(self.statuses) if self.statuses else None,
            self.thread_id,
            self.assistant_id,
            self.graph_id,
            None if self.older_than is None else now - self.older_than,
            None if self.newer_than is None else now - self.newer_than,
        )


async def database_now(conn: Queryable) -> datetime:
    now: datetime = await conn.fetchval(queries.database_now)
    return now


async def list_runs(conn: Queryable, which: RunFilter, limit: int) -> list[dict[str, Any]]:
    """Runs matching ``which``, newest first, at most ``limit``."""
    now = await database_now(conn)
    rows = await conn.fetch(queries.list_runs, *which.params(now), limit)
    return [dict(r) for r in rows]


async def find_run_ids(
    conn: Queryable,
    which: RunFilter,
    *,
    skip_cancelling: bool = False,
    now: datetime | None = None,
) -> list[UUID]:
    """The ids of every run matching ``which``, in queue order: what a bulk
    operation by filter works through, chosen once when it starts (so a run
    it retried and that failed again meanwhile is not taken twice)."""
    if now is None:
        now = await database_now(conn)
    rows = await conn.fetch(queries.find_run_ids, *which.params(now), skip_cancelling)
    return [r["run_id"] for r in rows]


async def run_statuses(conn: Queryable, run_ids: list[UUID]) -> dict[UUID, str]:
    """{run_id: status} for those of ``run_ids`` that exist."""
    rows = await conn.fetch(queries.run_statuses, run_ids)
    return {r["run_id"]: r["status"] for r in rows}


async def show_run(conn: Queryable, run_id: UUID) -> dict[str, Any] | None:
    """Run ``run_id`` in full, with its worker and how many events and
    checkpoints it wrote; None if there is no such run."""
    row = await conn.fetchrow(queries.show_run, run_id)
    if row is None:
        return None
    run = dict(row)
    for key in ("metadata", "error", "output"):
        run[key] = loads(run[key])
    return run


@dataclass(frozen=True)
class Stats:
    """The queue at a glance (``pgqueue stats``)."""

    # status -> count; every status is present, 0 when none.
    runs: dict[str, int]
    ready: int
    delayed: int
    oldest_pending_age: float | None
    workers: list[dict[str, Any]]
    workers_alive: int
    slots: int
    running_on_alive: int
    stale_runs: int
    ended_5m: int
    failed_5m: int
    ended_1h: int
    failed_1h: int

    @property
    def error_share_5m(self) -> float | None:
        return self.failed_5m / self.ended_5m if self.ended_5m else None

    @property
    def error_share_1h(self) -> float | None:
        return self.failed_1h / self.ended_1h if self.ended_1h else None


async def stats(conn: Queryable) -> Stats:
    runs = dict.fromkeys(STATUSES, 0)
    ready = delayed = 0
    oldest: float | None = None
    for r in await conn.fetch(queries.stats_runs):
        runs[r["status"]] = r["runs"]
        ready += r["ready"]
        delayed += r["delayed"]
        if r["oldest_pending_age"] is not None:
            oldest = r["oldest_pending_age"].total_seconds()
    workers = [
        {**dict(w), "heartbeat_age": w["heartbeat_age"].total_seconds()}
        for w in await conn.fetch(queries.stats_workers)
    ]
    alive = [w for w in workers if w["alive"]]
    recent = await conn.fetchrow(queries.stats_recent)
    assert recent is not None
    return Stats(
        runs=runs,
        ready=ready,
        delayed=delayed,
        oldest_pending_age=oldest,
        workers=workers,
        workers_alive=len(alive),
        slots=sum(w["concurrency"] for w in alive),
        running_on_alive=sum(w["running"] for w in alive),
        stale_runs=int(await conn.fetchval(queries.stats_stale)),
        ended_5m=recent["ended_5m"],
        failed_5m=recent["failed_5m"],
        ended_1h=recent["ended_1h"],
        failed_1h=recent["failed_1h"],
    )

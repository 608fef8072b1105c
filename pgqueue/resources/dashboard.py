"""What the read-only dashboard shows, read in one snapshot.

``overview`` answers the page's poll: the queue's depth and the runs ended
per status over a recent window, live counts, workers and the runs each
holds with its lease's age, stale runs, recent failures with their error,
and recent runs to open. ``timeline`` answers for one run: its attempts,
who held it, the checkpoints and events each attempt wrote, its end.

The series comes from the runs' own timestamps (``dashboard.sql``), not
from samples a process keeps: every process of ``serve --workers N``
answers the same picture, the history is there on the first load, and a
restart loses nothing. Every statement takes the request's filter, so a
user sees only runs on threads they may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.errors import NotFound
from pgqueue.resources.visibility import Visible

# Rows each list shows; the page polls, so each read stays small.
LIST_LIMIT = 20
RUNNING_LIMIT = 200
CHECKPOINT_LIMIT = 200
ENDED = ("success", "error", "timeout", "interrupted")


@dataclass(frozen=True)
class Window:
    """A span of the chart: its name in the API, and its bucket width."""

    name: str
    seconds: int
    bucket_seconds: int

    @property
    def buckets(self) -> int:
        return self.seconds // self.bucket_seconds


# Sixty buckets each: a chart of one width whatever the span.
WINDOWS = {
    w.name: w
    for w in (
        Window("5m", 300, 5),
        Window("15m", 900, 15),
        Window("1h", 3600, 60),
        Window("6h", 6 * 3600, 360),
        Window("24h", 24 * 3600, 1440),
    )
}
DEFAULT_WINDOW = "15m"


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


async def overview(pool: asyncpg.Pool, window: Window, visible: Visible) -> dict[str, Any]:
    """Everything the dashboard's page shows but a run's timeline."""
    f = visible.filter
    span = timedelta(seconds=window.seconds)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(queries.dashboard_without_jit)
        series = _rows(
            await conn.fetch(
                queries.dashboard_series,
                timedelta(seconds=window.bucket_seconds),
                window.buckets,
                f,
            )
        )
        live = dict(await conn.fetchrow(queries.dashboard_live, f) or {})
        workers = _rows(await conn.fetch(queries.dashboard_workers))
        running = _rows(await conn.fetch(queries.dashboard_running, RUNNING_LIMIT, f))
        stale = _rows(await conn.fetch(queries.dashboard_stale, LIST_LIMIT, f))
        failures = _rows(await conn.fetch(queries.dashboard_failures, LIST_LIMIT, span, f))
        recent = _rows(await conn.fetch(queries.dashboard_recent_runs, LIST_LIMIT, span, f))
    ended = {status: sum(b[status] for b in series) for status in ENDED}
    total_ended = sum(ended.values())
    return {
        "window": {
            "name": window.name,
            "seconds": window.seconds,
            "bucket_seconds": window.bucket_seconds,
        },
        "live": live,
        "ended": ended,
        "throughput": {
            "ended_last_minute": live.get("ended_last_minute", 0),
            "per_minute": round(total_ended * 60 / window.seconds, 2),
        },
        "series": series,
        "workers": held_by_worker(workers, running),
        "stale": stale,
        "failures": failures,
        "recent": recent,
    }


def held_by_worker(
    workers: list[dict[str, Any]], running: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each worker with the running runs it holds; runs held by a worker no
    longer registered (the sweeper removed it) under a worker of their own,
    marked unregistered."""
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for run in running:
        by_worker.setdefault(run["worker_id"], []).append(run)
    out = [{**w, "registered": True, "runs": by_worker.pop(w["worker_id"], [])} for w in workers]
    out.extend(
        {"worker_id": worker_id, "registered": False, "alive": False, "runs": runs}
        for worker_id, runs in by_worker.items()
    )
    return out


async def timeline(pool: asyncpg.Pool, run_id: UUID, visible: Visible) -> dict[str, Any]:
    """Run ``run_id``'s history; ``NotFound`` if it is missing or hidden."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(queries.dashboard_without_jit)
        row = await conn.fetchrow(queries.dashboard_run, run_id, visible.filter)
        if row is None:
            raise NotFound(f"run {run_id} not found")
        run = dict(row)
        events = _rows(await conn.fetch(queries.dashboard_run_events, run_id))
        checkpoints: list[dict[str, Any]] = []
        if run["thread_id"] is not None:
            checkpoints = _rows(
                await conn.fetch(
                    queries.dashboard_run_checkpoints,
                    str(run["thread_id"]),
                    str(run_id),
                    CHECKPOINT_LIMIT,
                )
            )
    total = checkpoints[0]["total"] if checkpoints else 0
    for c in checkpoints:
        del c["total"]
    return {
        "run": run,
        "attempts": attempts(run, events, checkpoints),
        "events": {
            "total": sum(e["events"] for e in events),
            "first_at": events[0]["first_at"] if events else None,
            "last_at": max(e["last_at"] for e in events) if events else None,
        },
        "checkpoints": {"total": total, "shown": len(checkpoints), "items": checkpoints},
    }


def attempts(
    run: dict[str, Any], events: list[dict[str, Any]], checkpoints: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per attempt, from the run row (its last attempt: holder,
    claim, end), the events each attempt wrote (``run_events.attempt``) and
    the checkpoints (their ``run_attempt`` metadata). The runs table keeps
    only the last attempt's worker and times: an earlier attempt's holder
    is not recorded, and its span is what its events and checkpoints show."""
    per_events = {e["attempt"]: e for e in events}
    per_checkpoints: dict[int, list[str]] = {}
    for c in checkpoints:
        if c["attempt"] is not None and str(c["attempt"]).isdigit():
            per_checkpoints.setdefault(int(c["attempt"]), []).append(c["checkpoint_id"])
    last = max([run["attempt"], *per_events, *per_checkpoints], default=0)
    out = []
    for n in range(1, last + 1):
        e = per_events.get(n, {})
        current = n == run["attempt"]
        live = run["status"] in ("pending", "running")
        if current and not live:
            outcome = run["status"]
        elif current and run["status"] == "running":
            outcome = "running"
        else:
            outcome = "retried or requeued"
        out.append(
            {
                "attempt": n,
                "worker_id": run["worker_id"] if current else None,
                "claimed_at": run["started_at"] if current else None,
                "ended_at": run["ended_at"] if current else None,
                "outcome": outcome,
                "events": e.get("events", 0),
                "event_kinds": e.get("kinds", []),
                "first_event_at": e.get("first_at"),
                "last_event_at": e.get("last_at"),
                "checkpoints": per_checkpoints.get(n, []),
            }
        )
    return out

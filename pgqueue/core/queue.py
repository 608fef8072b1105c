"""The run queue's data operations: submit, claim, complete, release.

Plain functions over an asyncpg connection (or pool), so callers choose the
transaction: ``submit`` inside a caller's transaction notifies only if that
transaction commits. Every statement comes from ``pgqueue.sql``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

import asyncpg

from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.errors import NotFound, ThreadBusy
from pgqueue.observe import metrics
from pgqueue.types import (
    CANCEL_ACTIONS,
    MULTITASK_STRATEGIES,
    TERMINAL_STATUSES,
    Lease,
    Queryable,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewRun:
    """A run to submit. ``delay`` seconds from now it becomes claimable."""

    run_id: UUID = field(default_factory=uuid7)
    thread_id: UUID | None = None
    assistant_id: UUID | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_attempts: int = 3
    delay: float = 0.0
    # Merged into the thread's metadata as the run is submitted (the HTTP API
    # records the run's graph_id and assistant_id there, as the platform does).
    thread_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmittedRun:
    run_id: UUID
    seq: int
    created_at: datetime
    not_before: datetime


@dataclass(frozen=True)
class ClaimedRun:
    """A run this worker holds; ``attempt`` is the lease's fencing token."""

    run_id: UUID
    thread_id: UUID | None
    assistant_id: UUID | None
    attempt: int
    max_attempts: int
    releases: int
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    seq: int
    worker_id: str = ""
    # Set when a cancel was asked for while a (now dead) worker held the run:
    # finish the cancel instead of running it.
    cancel_action: str | None = None
    # time.monotonic() at the claim: the attempt's duration starts here.
    claimed_at: float = field(default=0.0, compare=False, repr=False)

    # Cached: the worker keys its tables by the lease many times per run.
    @cached_property
    def lease(self) -> Lease:
        return Lease(self.run_id, self.attempt, self.worker_id)


@dataclass(frozen=True)
class Completion:
    """A final write for a held run. ``retry_delay`` (only with status
    'error') asks for a retry that many seconds later while attempts remain."""

    run_id: UUID
    attempt: int
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    retry_delay: float | None = None


@dataclass(frozen=True)
class SweepResult:
    requeued: int
    failed: int
    workers_removed: int


class EncodedJson(str):
    """A value already encoded as JSON: written as is, not encoded again."""


def _dumps(value: Any) -> str | None:
    if value is None or isinstance(value, EncodedJson):
        return value
    return json.dumps(value)


def _loads(value: str | None) -> Any:
    if value is None:
        return None
    # Most runs carry no metadata: skip the parser for the empty object.
    return {} if value == "{}" else json.loads(value)


async def submit(
    conn: Queryable,
    runs: Sequence[NewRun],
    *,
    wake: bool = True,
    create_threads: bool = True,
    multitask_strategy: str = "enqueue",
    thread_filter: str | None = None,
) -> list[SubmittedRun]:
    """Submit runs. ``multitask_strategy`` decides, in the same transaction,
    what happens to live runs already on the runs' threads:

    - ``enqueue`` (default): nothing; the new runs wait their turn (FIFO);
    - ``reject``: raise ``ThreadBusy`` and insert nothing;
    - ``interrupt`` / ``rollback``: cancel them with that action; the new run
      starts once they have stopped, from the state they left.

    ``thread_filter`` (a metadata filter as JSON, see
    ``pgqueue.resources.visibility``): existing threads must pass it, or
    ``NotFound`` is raised and nothing is written.
    """
    if multitask_strategy not in MULTITASK_STRATEGIES:
        raise ValueError(
            f"multitask_strategy must be one of {MULTITASK_STRATEGIES}, got {multitask_strategy!r}"
        )
    if multitask_strategy == "enqueue":
        return await _insert(conn, runs, wake, create_threads, multitask_strategy, thread_filter)
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired:
            return await submit(
                acquired,
                runs,
                wake=wake,
                create_threads=create_threads,
                multitask_strategy=multitask_strategy,
                thread_filter=thread_filter,
            )
    thread_ids = sorted({r.thread_id for r in runs if r.thread_id is not None})
    async with conn.transaction():
        locked = await conn.fetch(queries.lock_threads, thread_ids, thread_filter)
        hidden = sorted(str(r["thread_id"]) for r in locked if not r["visible"])
        if hidden:
            # Before looking at its runs: busy or not, it is not there.
            raise NotFound(f"thread {', '.join(hidden)} not found")
        active = await conn.fetch(queries.active_runs_on_threads, thread_ids)
        if active and multitask_strategy == "reject":
            raise ThreadBusy(sorted({r["thread_id"] for r in active}))
        submitted = await _insert(
            conn, runs, wake, create_threads, multitask_strategy, thread_filter
        )
        if active:
            await conn.fetch(queries.cancel_runs, [r["run_id"] for r in active], multitask_strategy)
        return submitted


async def _insert(
    conn: Queryable,
    runs: Sequence[NewRun],
    wake: bool,
    create_threads: bool,
    multitask_strategy: str,
    thread_filter: str | None = None,
) -> list[SubmittedRun]:
    """Insert pending runs in one statement, creating missing threads unless
    ``create_threads`` is false (then an unknown thread id is an error).

    With ``wake`` the statement also sends one NOTIFY, delivered when the
    surrounding transaction commits and never if it rolls back.
    """
    if not runs:
        return []
    for run in runs:
        if run.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {run.max_attempts}")
        if run.delay < 0:
            raise ValueError(f"delay must not be negative, got {run.delay}")
    rows = await conn.fetch(
        queries.submit_runs,
        [r.run_id for r in runs],
        [r.thread_id for r in runs],
        [r.assistant_id for r in runs],
        [json.dumps(r.kwargs) for r in runs],
        [json.dumps(r.metadata) for r in runs],
        [r.priority for r in runs],
        [r.max_attempts for r in runs],
        [float(r.delay) for r in runs],
        wake,
        create_threads,
        multitask_strategy,
        [json.dumps(r.thread_metadata) for r in runs],
        thread_filter,
    )
    if not rows:
        # A thread the filter hides: answered as a missing one.
        missing = sorted({str(r.thread_id) for r in runs})
        raise NotFound(f"thread {', '.join(missing)} not found")
    return [SubmittedRun(r["run_id"], r["seq"], r["created_at"], r["not_before"]) for r in rows]


async def claim(conn: Queryable, worker_id: str, limit: int) -> list[ClaimedRun]:
    """Claim up to ``limit`` ready runs for ``worker_id`` in one statement."""
    if limit <= 0:
        return []
    started = time.monotonic()
    for _ in range(3):
        try:
            rows = await conn.fetch(queries.claim_runs, worker_id, limit)
            break
        except asyncpg.UniqueViolationError:
            # Two claimers raced for runs of one thread (possible only when
            # submits on that thread commit out of seq order) and the unique
            # index refused this statement. It waited for the winner's commit,
            # so claiming again at once no longer picks that thread.
            log.info("claim lost a per-thread race", extra={"event": "claim_thread_race"})
    else:
        return []
    now = time.monotonic()
    metrics.claimed([r["waited"] for r in rows], now - started)
    return [
        ClaimedRun(
            run_id=r["run_id"],
            thread_id=r["thread_id"],
            assistant_id=r["assistant_id"],
            attempt=r["attempt"],
            max_attempts=r["max_attempts"],
            releases=r["releases"],
            kwargs=_loads(r["kwargs"]),
            metadata=_loads(r["metadata"]),
            seq=r["seq"],
            worker_id=worker_id,
            cancel_action=r["cancel_action"],
            claimed_at=now,
        )
        for r in rows
    ]


async def cancel(
    conn: Queryable, run_ids: Sequence[UUID], action: str = "interrupt"
) -> dict[UUID, str]:
    """Cancel live runs: {run_id: 'interrupted' | 'deleted' | 'cancelling'}.
    Pending runs are done at once; running ones are stopped by their worker
    (told by NOTIFY), which finishes the cancel fenced."""
    if action not in CANCEL_ACTIONS:
        raise ValueError(f"cancel action must be one of {CANCEL_ACTIONS}, got {action!r}")
    rows = await conn.fetch(queries.cancel_runs, list(run_ids), action)
    return {r["run_id"]: r["outcome"] for r in rows}


async def next_due_in(conn: Queryable) -> float | None:
    """Seconds until the earliest delayed pending run is ready, if any."""
    row = await conn.fetchrow(queries.next_due_at)
    if row is None or row["due_at"] is None:
        return None
    return max(0.0, (row["due_at"] - row["db_now"]).total_seconds())


async def complete(
    conn: Queryable, worker_id: str, completions: Sequence[Completion]
) -> dict[UUID, str]:
    """Write final outcomes for runs ``worker_id`` holds, fenced; returns
    {run_id: new status} for the runs whose lease was still held. Runs absent
    from the result wrote nothing."""
    if not completions:
        return {}
    for c in completions:
        if c.status not in TERMINAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(TERMINAL_STATUSES)}, got {c.status!r}")
    rows = await conn.fetch(
        queries.complete_runs,
        worker_id,
        [c.run_id for c in completions],
        [c.attempt for c in completions],
        [c.status for c in completions],
        [_dumps(c.output) for c in completions],
        [_dumps(c.error) for c in completions],
        [c.retry_delay for c in completions],
    )
    return {r["run_id"]: r["status"] for r in rows}


async def release(conn: Queryable, worker_id: str, leases: Iterable[Lease]) -> set[UUID]:
    """Hand held runs back to pending (not counted as a failed attempt)."""
    leases = list(leases)
    if not leases:
        return set()
    rows = await conn.fetch(
        queries.release_runs,
        worker_id,
        [lease.run_id for lease in leases],
        [lease.attempt for lease in leases],
    )
    return {r["run_id"] for r in rows}


async def sweep(conn: Queryable, stale_after: float | None = None) -> SweepResult:
    """Run ``pgqueue_sweep`` once (a no-op if another sweeper holds its lock)."""
    interval = None if stale_after is None else timedelta(seconds=stale_after)
    row = await conn.fetchrow(queries.sweep, interval)
    assert row is not None
    return SweepResult(row["requeued"], row["failed"], row["workers_removed"])


async def get_run(conn: Queryable, run_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(queries.get_run, run_id)
    if row is None:
        return None
    run = dict(row)
    for key in ("kwargs", "metadata", "output", "error"):
        run[key] = _loads(run[key])
    return run

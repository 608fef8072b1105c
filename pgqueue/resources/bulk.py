"""Retry and cancel many runs, in batches an operator can stop between.

Each batch is its own transaction: stopped after any batch (``stop`` set,
a lost connection, Ctrl-C), what was done stays done and the rest is
untouched; nothing is ever half-written. The runs are chosen when the
operation starts (``admin.find_run_ids``) and each batch checks again, with
the rows locked, that each run is still in a state the operation acts on:
what changed meanwhile is skipped, not overwritten.

Retry means what it means in River or Oban: the run becomes pending again,
ready now, keeping its attempt count (the lease's fencing token), with
``max_attempts`` raised when it was used up so that one more attempt is
allowed. It is a resubmission as far as its thread is concerned: the thread
turns busy and the run goes behind those already waiting on it, so runs on
one thread still start one at a time and in order. Idle workers are woken by
the NOTIFY a submit sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.resources.visibility import EVERYTHING

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
# Deadlocks with a concurrent submit or prune over the same threads: the
# database rolled the batch back, so it is simply tried again.
DEADLOCK_RETRIES = 3


@dataclass
class BulkResult:
    """What a bulk operation did: ``done`` runs retried or cancelled (their
    ids in ``outcomes``, with the outcome), ``skipped`` chosen runs that
    were no longer in a state to act on when their batch came, ``stopped``
    when it stopped before the end."""

    total: int
    done: int = 0
    skipped: int = 0
    stopped: bool = False
    outcomes: dict[UUID, str] = field(default_factory=dict)

    @property
    def processed(self) -> int:
        return self.done + self.skipped


# Called after each committed batch with the result so far.
Progress = Callable[[BulkResult], None]


async def _in_batches(
    run_ids: Sequence[UUID],
    batch: Callable[[list[UUID]], Awaitable[dict[UUID, str]]],
    batch_size: int,
    progress: Progress | None,
    stop: asyncio.Event | None,
) -> BulkResult:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    result = BulkResult(total=len(run_ids))
    for start in range(0, len(run_ids), batch_size):
        if stop is not None and stop.is_set():
            result.stopped = True
            break
        chunk = list(run_ids[start : start + batch_size])
        for attempt in range(DEADLOCK_RETRIES):
            try:
                outcomes = await batch(chunk)
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                log.info("bulk batch deadlocked; retrying", extra={"event": "bulk_deadlock"})
        result.outcomes.update(outcomes)
        result.done += len(outcomes)
        result.skipped += len(chunk) - len(outcomes)
        if progress is not None:
            progress(result)
    return result


def _rounds(rows: Sequence[asyncpg.Record]) -> list[list[UUID]]:
    """Runs (in queue order) split so that no round holds two runs of one
    thread: one round's new seqs come in no particular order, and rounds
    in turn keep each thread's runs in their order."""
    rounds: list[list[UUID]] = []
    seen: dict[UUID, int] = {}
    for r in rows:
        thread = r["thread_id"]
        k = 0
        if thread is not None:
            k = seen.get(thread, 0)
            seen[thread] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(r["run_id"])
    return rounds


async def _retry_batch(pool: asyncpg.Pool, run_ids: list[UUID]) -> dict[UUID, str]:
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(queries.lock_retryable_runs, run_ids)
        if not rows:
            return {}
        for ids in _rounds(rows):
            await conn.execute(queries.retry_runs, ids)
        threads = sorted({r["thread_id"] for r in rows if r["thread_id"] is not None})
        await conn.execute(queries.wake_retried_runs, threads)
    return {r["run_id"]: "retried" for r in rows}


async def retry(
    pool: asyncpg.Pool,
    run_ids: Sequence[UUID],
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> BulkResult:
    """Put those of ``run_ids`` that ended in error, timeout or interrupted
    back to pending (see the module's docstring), ``batch_size`` per
    transaction, in the order given (queue order keeps threads' order)."""
    return await _in_batches(
        run_ids, lambda ids: _retry_batch(pool, ids), batch_size, progress, stop
    )


async def _cancel_batch(pool: asyncpg.Pool, run_ids: list[UUID], action: str) -> dict[UUID, str]:
    # The API's cancel: pending runs end at once, running ones are told by
    # NOTIFY and stopped by their worker. An operator sees every thread.
    # Imported here: runs imports LangGraph, which would double the start-up
    # time of every command line (pgqueue.cli.main imports this module).
    from pgqueue.resources import runs

    return await runs.cancel(pool, run_ids, action, visible=EVERYTHING)


async def cancel(
    pool: asyncpg.Pool,
    run_ids: Sequence[UUID],
    action: str = "interrupt",
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
) -> BulkResult:
    """Cancel those of ``run_ids`` still pending or running, ``batch_size``
    at a time; outcomes are the API's: interrupted, deleted (rollback of a
    pending run) or cancelling (a worker is stopping it)."""
    return await _in_batches(
        run_ids, lambda ids: _cancel_batch(pool, ids, action), batch_size, progress, stop
    )

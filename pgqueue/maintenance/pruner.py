"""Deletes what is past keeping: stream events once their run is long
finished, finished runs once they are older than the run retention,
threads whose TTL ran out, and checkpoint blobs and writes that no
remaining checkpoint needs.

Events matter while a run streams and for a while after (late joiners,
reconnects with Last-Event-ID): they go ``event_retention`` after the run's
end. Runs are the history (``runs.list``, joins, the thread's last output):
they go ``run_retention`` after their end, except each thread's newest run,
which its status and views read whatever its age. A thread whose TTL
(migration 0011) ran out goes whole (strategy ``delete``: its runs, crons,
events and checkpoints) or keeps only its latest checkpoint (``keep_latest``,
by langgraph's own ``aprune``; only where a checkpointer is given, as in
server processes).

Dead rows behind a pinned vacuum horizon slow every ``SKIP LOCKED`` claim
(DESIGN.md), so deletes go in batches, each its own short transaction
(``retention.sql``, calling migration 0012's functions, which the pg_cron
form, ``CALL pgqueue_prune()``, runs too), and one process prunes at a
time: a pass that finds another's batch under way ends
(``PrunerResult.skipped``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg
import psycopg

from pgqueue.db.sql import queries
from pgqueue.maintenance.service import PeriodicService, require, require_interval

if TYPE_CHECKING:
    # Not at run time: LangGraph takes a second to import, and commands such
    # as migrate load this module without running a graph.
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class PrunerConfig:
    interval: float = 60.0
    # Seconds after a run ended before its events go.
    event_retention: float = 3600.0
    # Seconds after a run ended before it goes (with any events left).
    run_retention: float = 30 * DAY
    # Events deleted per statement: bounds how long each one holds locks.
    batch_size: int = 10_000
    # Runs deleted per statement: smaller, as each may take its events.
    run_batch_size: int = 1_000
    # Expired threads handled per statement (each takes its checkpoints),
    # and per pass at most (langgraph.json's checkpointer.ttl.sweep_limit).
    thread_batch_size: int = 100
    thread_limit: int | None = None
    # Checkpoint garbage: threads looked at per statement, statements per
    # pass. Each pass goes on where the last one stopped, round the table.
    garbage_threads: int = 100
    garbage_batches: int = 10
    # Between two batches, a pause of at least batch_pause seconds and of
    # pause_ratio times the last batch's own time, so the pruner's backend
    # is busy at most 1 / (1 + pause_ratio) of the time. A claim that meets
    # a running batch shares the CPU with it (bench/retention.py: those
    # claims' p99 was 4.9-5.8 ms, against 2.0-2.8 ms on the idle table, on a
    # machine the drain keeps 94% busy), so what the batches cost the
    # workers' p99 is how often a claim meets one: at 2, claim p99 during a
    # 1M-run pass was 1.3-2.0x the idle table's; at 8, 1.14-1.18x of the
    # same table's claims while the pass was held (bench --ab-window). A
    # backlog takes longer to empty (714 against 250 s for that history); a
    # steady state's pass is a few batches either way.
    batch_pause: float = 0.05
    pause_ratio: float = 8.0

    def __post_init__(self) -> None:
        require_interval(self)
        for name in ("event_retention", "run_retention", "batch_pause", "pause_ratio"):
            value = getattr(self, name)
            require(value >= 0, self, f"{name} must be 0 or more seconds, got {value!r}")
        for name in (
            "batch_size",
            "run_batch_size",
            "thread_batch_size",
            "garbage_threads",
            "garbage_batches",
        ):
            value = getattr(self, name)
            require(value >= 1, self, f"{name} must be 1 or more, got {value!r}")
        limit = self.thread_limit
        require(limit is None or limit >= 1, self, f"thread_limit must be 1 or more, got {limit!r}")


@dataclass(frozen=True)
class PrunerResult:
    # Stream events deleted (not counting those that went with their run).
    events: int = 0
    # Finished runs deleted.
    runs: int = 0
    # Expired threads deleted, and expired threads cut to their latest checkpoint.
    threads_deleted: int = 0
    threads_kept_latest: int = 0
    # Checkpoint blobs and writes no remaining checkpoint needs.
    garbage: int = 0
    # Statements sent, each one batch.
    batches: int = 0
    # Another process was pruning: this pass deleted nothing more.
    skipped: bool = False


class Pruner(PeriodicService[PrunerConfig]):
    name = "prune"

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: PrunerConfig | None = None,
        checkpointer: AsyncPostgresSaver | None = None,
    ) -> None:
        self._pool = pool
        self._checkpointer = checkpointer
        self._started = self._last_batch = 0.0
        super().__init__(config or PrunerConfig())

    async def run_once(self) -> PrunerResult:
        """Events, runs, then expired threads, batch after batch, until a
        batch is short or another process holds the pruning turn."""
        c = self.config
        events, batches, skipped = await self._batches(
            queries.prune_events, c.event_retention, c.batch_size
        )
        runs = deleted = kept = 0
        if not skipped:
            runs, more, skipped = await self._batches(
                queries.prune_runs, c.run_retention, c.run_batch_size
            )
            batches += more
        if not skipped:
            deleted, kept, more, skipped = await self._expired_threads()
            batches += more
        garbage = 0
        if not skipped:
            garbage, more, skipped = await self._checkpoint_garbage()
            batches += more
        if events or runs or deleted or kept or garbage:
            log.info(
                "pruned %d stream events, %d finished runs, %d expired threads "
                "(and %d cut to their latest checkpoint), %d unreferenced checkpoint rows",
                events,
                runs,
                deleted,
                kept,
                garbage,
                extra={"event": "pruned", "events": events, "runs": runs, "threads": deleted},
            )
        return PrunerResult(events, runs, deleted, kept, garbage, batches, skipped)

    async def _checkpoint_garbage(self) -> tuple[int, int, bool]:
        """(deleted, batches, skipped): up to ``garbage_batches`` statements,
        going on round the threads from where the last batch, of any
        process, stopped (the database keeps that cursor)."""
        total = batches = 0
        while batches < self.config.garbage_batches:
            await self._pause(batches)
            row = await self._pool.fetchrow(
                queries.prune_checkpoint_garbage, self.config.garbage_threads
            )
            assert row is not None
            batches += 1
            self._took()
            if not row["mine"]:
                return total, batches, True
            total += row["deleted"]
            if row["threads"] < self.config.garbage_threads:
                break  # round the table done: the next pass starts it again
        return total, batches, False

    async def _expired_threads(self) -> tuple[int, int, int, bool]:
        """(deleted, kept_latest, batches, skipped) over expired threads."""
        size, left = self.config.thread_batch_size, self.config.thread_limit
        deleted = kept = batches = 0
        cursor = None
        while left is None or left > 0:
            await self._pause(batches)
            n = size if left is None else min(size, left)
            row = await self._pool.fetchrow(queries.delete_expired_threads, n, cursor)
            assert row is not None
            batches += 1
            self._took()
            if not row["mine"]:
                return deleted, kept, batches, True
            cursor = row["cursor"] or cursor
            deleted += len(row["deleted"])
            left = None if left is None else left - len(row["deleted"])
            if len(row["deleted"]) < n:
                break
        if self._checkpointer is None:
            return deleted, kept, batches, False
        while left is None or left > 0:
            await self._pause(batches)
            n = size if left is None else min(size, left)
            row = await self._pool.fetchrow(queries.expired_keep_latest_threads, n)
            assert row is not None
            batches += 1
            self._took()
            if not row["mine"]:
                return deleted, kept, batches, True
            expired = row["expired"]
            try:
                await self._checkpointer.aprune(expired, strategy="keep_latest")
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                # A run wrote to one of them meanwhile: the next pass.
                return deleted, kept, batches, False
            except NotImplementedError as exc:
                # A graph whose channels keep history across checkpoints
                # (langgraph's DeltaChannel) cannot lose the older ones:
                # these threads stay whole, and are not tried again.
                log.warning("threads %s kept every checkpoint: %s", expired, exc)
            await self._pool.execute(queries.pruned_keep_latest, expired)
            kept += len(expired)
            left = None if left is None else left - len(expired)
            if len(expired) < n:
                break
        return deleted, kept, batches, False

    async def _batches(self, statement: str, age: float, size: int) -> tuple[int, int, bool]:
        """(deleted, batches, skipped): ``statement`` until it deletes fewer
        than ``size`` or finds the turn taken."""
        total = batches = 0
        cursor = None
        while True:
            await self._pause(batches)
            row = await self._pool.fetchrow(statement, timedelta(seconds=age), size, cursor)
            assert row is not None
            batches += 1
            self._took()
            if not row["mine"]:
                return total, batches, True
            cursor = row["cursor"] or cursor
            total += row["deleted"]
            if row["deleted"] < size:
                return total, batches, False

    async def _pause(self, batches: int) -> None:
        """Between batches (not before the first): the workers' turn."""
        if batches:
            c = self.config
            await asyncio.sleep(max(c.batch_pause, self._last_batch * c.pause_ratio))
        self._started = time.monotonic()

    def _took(self) -> None:
        """Call after each batch: how long it took, for the next pause."""
        self._last_batch = time.monotonic() - self._started

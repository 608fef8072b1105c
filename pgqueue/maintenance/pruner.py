"""Deletes what is past keeping: stream events once their run is long
finished, and finished runs once they are older than the run retention.

Events matter while a run streams and for a while after (late joiners,
reconnects with Last-Event-ID): they go ``event_retention`` after the run's
end. Runs are the history (``runs.list``, joins, the thread's last output):
they go ``run_retention`` after their end, except each thread's newest run,
which its status and views read whatever its age.

Dead rows behind a pinned vacuum horizon slow every ``SKIP LOCKED`` claim
(DESIGN.md), so deletes go in batches, each its own short transaction
(``retention.sql``), and one process prunes at a time: a pass that finds
another process's batch under way ends (``PrunerResult.skipped``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.maintenance.service import PeriodicService, require, require_interval

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

    def __post_init__(self) -> None:
        require_interval(self)
        for name in ("event_retention", "run_retention"):
            value = getattr(self, name)
            require(value >= 0, self, f"{name} must be 0 or more seconds, got {value!r}")
        for name in ("batch_size", "run_batch_size"):
            value = getattr(self, name)
            require(value >= 1, self, f"{name} must be 1 or more, got {value!r}")


@dataclass(frozen=True)
class PrunerResult:
    # Stream events deleted (not counting those that went with their run).
    events: int = 0
    # Finished runs deleted.
    runs: int = 0
    # Statements sent, each one batch.
    batches: int = 0
    # Another process was pruning: this pass deleted nothing more.
    skipped: bool = False


class Pruner(PeriodicService[PrunerConfig]):
    name = "prune"

    def __init__(self, pool: asyncpg.Pool, config: PrunerConfig | None = None) -> None:
        self._pool = pool
        super().__init__(config or PrunerConfig())

    async def run_once(self) -> PrunerResult:
        """Events, then runs, batch after batch, until a batch is short or
        another process holds the pruning turn."""
        c = self.config
        events, event_batches, skipped = await self._batches(
            queries.prune_events, c.event_retention, c.batch_size
        )
        runs = run_batches = 0
        if not skipped:
            runs, run_batches, skipped = await self._batches(
                queries.prune_runs, c.run_retention, c.run_batch_size
            )
        if events or runs:
            log.info(
                "pruned %d stream events and %d finished runs",
                events,
                runs,
                extra={"event": "pruned", "events": events, "runs": runs},
            )
        return PrunerResult(events, runs, event_batches + run_batches, skipped)

    async def _batches(self, statement: str, age: float, size: int) -> tuple[int, int, bool]:
        """(deleted, batches, skipped): ``statement`` until it deletes fewer
        than ``size`` or finds the turn taken."""
        total = batches = 0
        while True:
            row = await self._pool.fetchrow(statement, timedelta(seconds=age), size)
            assert row is not None
            batches += 1
            if not row["mine"]:
                return total, batches, True
            total += row["deleted"]
            if row["deleted"] < size:
                return total, batches, False

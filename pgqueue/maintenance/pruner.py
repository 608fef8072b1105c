"""Deletes stream events once their run is long finished.

Events matter while a run streams and for a while after (late joiners,
reconnects with Last-Event-ID); after ``event_retention`` past the run's
end they go, in batches so no single statement holds locks for long.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.maintenance.service import PeriodicService, require, require_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrunerConfig:
    interval: float = 60.0
    # Seconds after a run ended before its events go.
    event_retention: float = 3600.0
    # Events deleted per statement: bounds how long each one holds locks.
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        require_interval(self)
        require(
            self.event_retention >= 0,
            self,
            f"event_retention must be 0 or more seconds, got {self.event_retention!r}",
        )
        require(
            self.batch_size >= 1, self, f"batch_size must be 1 or more, got {self.batch_size!r}"
        )


@dataclass(frozen=True)
class PrunerResult:
    # Stream events deleted, over every batch of the pass.
    deleted: int = 0
    batches: int = 0


class Pruner(PeriodicService[PrunerConfig]):
    name = "prune"

    def __init__(self, pool: asyncpg.Pool, config: PrunerConfig | None = None) -> None:
        self._pool = pool
        super().__init__(config or PrunerConfig())

    async def run_once(self) -> PrunerResult:
        """Delete expired events, batch after batch, until a batch is short."""
        total = batches = 0
        retention = timedelta(seconds=self.config.event_retention)
        while True:
            status = await self._pool.execute(
                queries.prune_events, retention, self.config.batch_size
            )
            deleted = int(status.split()[-1])
            total += deleted
            batches += 1
            if deleted < self.config.batch_size:
                break
        if total:
            log.info(
                "pruned %d stream events", total, extra={"event": "pruned_events", "count": total}
            )
        return PrunerResult(deleted=total, batches=batches)

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
from pgqueue.maintenance.service import PeriodicService

log = logging.getLogger(__name__)


@dataclass
class PrunerConfig:
    interval: float = 60.0
    event_retention: float = 3600.0
    batch_size: int = 10_000


class Pruner(PeriodicService):
    name = "prune"

    def __init__(self, pool: asyncpg.Pool, config: PrunerConfig | None = None) -> None:
        self._pool = pool
        self.config = config or PrunerConfig()
        super().__init__(self.config.interval)

    async def run_once(self) -> int:
        """Delete expired events, batch after batch; returns how many."""
        total = 0
        retention = timedelta(seconds=self.config.event_retention)
        while True:
            status = await self._pool.execute(
                queries.prune_events, retention, self.config.batch_size
            )
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < self.config.batch_size:
                break
        if total:
            log.info(
                "pruned %d stream events", total, extra={"event": "pruned_events", "count": total}
            )
        return total

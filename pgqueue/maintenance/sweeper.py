"""Puts back runs whose worker went silent; the in-process way to call
``pgqueue_sweep()`` (the other is a pg_cron job, see
``pgqueue.maintenance.pg_cron``).

Every process may run a sweeper: the SQL function takes a transaction-level
advisory lock with ``pg_try_advisory_xact_lock``, so only one sweeps at a
time and the others return at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import SweepResult
from pgqueue.maintenance.service import PeriodicService, require, require_interval
from pgqueue.observe import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweeperConfig:
    interval: float = 5.0
    # A running run whose heartbeat is older than this goes back to pending.
    # Keep it several heartbeat intervals long. None: the database's
    # pgqueue.lease_timeout setting (20 s unless set), as the pg_cron job uses.
    stale_after: float | None = None

    def __post_init__(self) -> None:
        require_interval(self)
        require(
            self.stale_after is None or self.stale_after > 0,
            self,
            f"stale_after must be a positive number of seconds or None, got {self.stale_after!r}",
        )


class Sweeper(PeriodicService[SweeperConfig]):
    name = "sweep"

    def __init__(self, pool: asyncpg.Pool, config: SweeperConfig | None = None) -> None:
        self._pool = pool
        super().__init__(config or SweeperConfig())

    async def run_once(self) -> SweepResult:
        result = await queue.sweep(self._pool, self.config.stale_after)
        metrics.swept(result.requeued, result.failed, result.workers_removed)
        if result.requeued or result.failed or result.workers_removed:
            log.info(
                "sweep requeued %d, failed %d, removed %d dead workers",
                result.requeued,
                result.failed,
                result.workers_removed,
                extra={"event": "sweep", "requeued": result.requeued, "failed": result.failed},
            )
        return result

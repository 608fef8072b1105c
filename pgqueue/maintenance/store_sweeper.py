"""Deletes the store's expired items (LangGraph's ``AsyncPostgresStore``).

Reads already leave expired items out (the server's store is made with
``omit_expired``); this pass gives their rows back. Every server process
runs it: the delete is idempotent, so several at once only repeat work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from langgraph.store.postgres.aio import AsyncPostgresStore

from pgqueue.maintenance.service import PeriodicService, require_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreSweeperConfig:
    # langgraph.json's store.ttl.sweep_interval_minutes (5), in seconds.
    interval: float = 300.0

    def __post_init__(self) -> None:
        require_interval(self)


@dataclass(frozen=True)
class StoreSweeperResult:
    # Expired items deleted; 0 also when the database was away (logged).
    deleted: int = 0


class StoreSweeper(PeriodicService[StoreSweeperConfig]):
    name = "store_sweep"

    def __init__(self, store: AsyncPostgresStore, config: StoreSweeperConfig | None = None) -> None:
        self._store = store
        super().__init__(config or StoreSweeperConfig())

    async def run_once(self) -> StoreSweeperResult:
        """Delete expired items (a database that is away: the loop logs it
        and tries again next interval)."""
        deleted = await self._store.sweep_ttl()
        if deleted:
            log.info(
                "deleted %d expired store items",
                deleted,
                extra={"event": "store_items_expired", "count": deleted},
            )
        return StoreSweeperResult(deleted=deleted)

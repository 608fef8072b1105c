"""Deletes the store's expired items (LangGraph's ``AsyncPostgresStore``).

Reads already leave expired items out (the server's store is made with
``omit_expired``); this pass gives their rows back. Every server process
runs it: the delete is idempotent, so several at once only repeat work.
"""

from __future__ import annotations

import logging

import psycopg
from langgraph.store.postgres.aio import AsyncPostgresStore

from pgqueue.maintenance.service import PeriodicService

log = logging.getLogger(__name__)


class StoreSweeper(PeriodicService):
    name = "store_sweep"

    def __init__(self, store: AsyncPostgresStore, interval: float) -> None:
        self._store = store
        super().__init__(interval)

    async def run_once(self) -> int:
        """Delete expired items; how many. A database that is away is
        logged and tried again next interval (the loop catches only
        asyncpg's errors and OSError)."""
        try:
            deleted = await self._store.sweep_ttl()
        except psycopg.Error as exc:
            log.warning("store sweep failed: %s", exc, extra={"event": f"{self.name}_failed"})
            return 0
        if deleted:
            log.info(
                "deleted %d expired store items",
                deleted,
                extra={"event": "store_items_expired", "count": deleted},
            )
        return deleted

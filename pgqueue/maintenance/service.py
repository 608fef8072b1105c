"""The loop every maintenance service shares: ``run_once()`` every
``interval`` seconds until ``stop()``. Services keep their logic in
``run_once()`` (which tests call directly); a database error in one pass is
logged and the next pass tries again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)


class PeriodicService:
    name = "service"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stop = asyncio.Event()

    async def run_once(self) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("%s failed: %s", self.name, exc, extra={"event": f"{self.name}_failed"})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

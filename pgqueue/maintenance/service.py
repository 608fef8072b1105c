"""The shape every maintenance service shares.

A service has a frozen config that checks itself when made (``require``
below), a ``run_once()`` that does one pass and returns a small result
dataclass (which tests call directly, faking time by back-dating rows), and
this loop around it: ``run_once()`` every ``config.interval`` seconds until
``stop()``. A database error in one pass (asyncpg's, or psycopg's for the
services that use LangGraph's store and checkpointer) is logged and the
next pass tries again. ``ServiceGroup`` starts and stops the services one
process runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import psycopg

from pgqueue.errors import ConfigError

log = logging.getLogger(__name__)


class ServiceConfig(Protocol):
    @property
    def interval(self) -> float: ...


def require(condition: bool, config: object, message: str) -> None:
    """Refuse a config that cannot work, naming it: a service given a zero
    interval would spin, a batch of 0 would never finish."""
    if not condition:
        raise ConfigError(f"{type(config).__name__}: {message}")


def require_interval(config: ServiceConfig) -> None:
    require(
        config.interval > 0,
        config,
        f"interval must be a positive number of seconds, got {config.interval!r}",
    )


C = TypeVar("C", bound=ServiceConfig)


class PeriodicService(Generic[C]):
    name = "service"

    def __init__(self, config: C) -> None:
        # Kept whole, typed as the subclass's own config: run_once reads it.
        self.config = config
        self._interval = config.interval
        self._stop = asyncio.Event()

    async def run_once(self) -> Any:
        raise NotImplementedError

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error) as exc:
                log.warning("%s failed: %s", self.name, exc, extra={"event": f"{self.name}_failed"})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


class ServiceGroup:
    """The services of one process, each in its own task: ``start()`` at
    start-up, ``await stop(grace)`` at shutdown."""

    def __init__(self, services: Sequence[PeriodicService]) -> None:
        self.services = list(services)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run()) for s in self.services]

    async def stop(self, grace: float) -> None:
        """Stop every service and wait for its pass to end. Bounded: a pass
        still stuck after ``grace`` seconds (on a database that stopped
        answering) is cancelled. A service that crashed is logged, not
        raised: shutdown goes on."""
        for service in self.services:
            service.stop()
        if not self._tasks:
            return
        _, stuck = await asyncio.wait(self._tasks, timeout=grace)
        for task in stuck:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for service, result in zip(self.services, results, strict=True):
            if isinstance(result, Exception):
                log.error(
                    "%s stopped with an error: %r",
                    service.name,
                    result,
                    extra={"event": "service_crashed"},
                )

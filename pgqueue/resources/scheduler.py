"""Fires due crons; every server process runs one.

Each tick fires at most once across any number of processes: a pass claims
due rows with ``FOR UPDATE SKIP LOCKED``, submits each cron's run on the
same connection and moves ``next_run_at`` to the schedule's first tick
after now, all in one transaction. Other processes skip the locked rows,
and once the pass commits the rows are no longer due. A pass that fails
before committing submitted nothing, and the next pass tries the tick again.

Ticks missed while no process was running are not replayed: the cron fires
once and moves on. A cron past its ``end_time`` is deleted. A tick whose
run cannot be created (assistant gone, thread busy under ``reject``, a
payload that no longer validates) is skipped and logged; the cron stays.

Stateless crons run on a new thread per tick. When the run's
``on_completion`` is ``delete`` the thread is tagged as temporary, and
every pass deletes tagged threads whose run has ended, so the cleanup does
not depend on the process that fired the cron still being alive. The same
pass deletes the temporary thread of a stateless run submitted over HTTP
whose server died before it could (after ``stateless_grace``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from pgqueue.db.encoding import loads
from pgqueue.db.pools import DATABASE_AWAY
from pgqueue.db.sql import queries
from pgqueue.errors import Conflict, Invalid, NotFound
from pgqueue.execution.graphs import GraphRegistry
from pgqueue.maintenance.service import PeriodicService, require, require_interval
from pgqueue.resources import crons, runs
from pgqueue.resources.runs import RunRequest
from pgqueue.resources.visibility import EVERYTHING

log = logging.getLogger(__name__)

# Turns a cron's stored payload into the run to submit: (payload,
# assistant_id, thread_id or None, the user who created the cron or None).
# The server validates payloads with its own request model, which this
# library does not import.
RequestBuilder = Callable[[dict[str, Any], UUID, UUID | None, dict[str, Any] | None], RunRequest]

# Thread metadata on a stateless cron's thread; the second key marks it
# temporary (deleted once its run ends).
CRON_ID_KEY = "cron_id"
TEMPORARY_TAG = {"cron_on_completion": "delete"}


@dataclass(frozen=True)
class SchedulerConfig:
    interval: float = 1.0
    # Due crons claimed per transaction: bounds how long a pass holds locks.
    batch_size: int = 100
    # Temporary threads of ended runs deleted per pass (of each kind).
    cleanup_batch: int = 100
    # Seconds after a stateless run ended before this pass deletes its
    # thread (on_completion=delete), in case the server serving it died; it
    # must outlast a slow client reading the run's result or stream.
    stateless_grace: float = 600.0

    def __post_init__(self) -> None:
        require_interval(self)
        for name in ("batch_size", "cleanup_batch"):
            value = getattr(self, name)
            require(value >= 1, self, f"{name} must be 1 or more, got {value!r}")
        require(
            self.stateless_grace >= 0,
            self,
            f"stateless_grace must be 0 or more seconds, got {self.stateless_grace!r}",
        )


@dataclass
class SchedulerResult:
    # Runs submitted, by run id.
    fired: list[UUID] = field(default_factory=list)
    # Crons whose tick passed without a run (disabled, or the submit was refused).
    skipped: list[UUID] = field(default_factory=list)
    # Crons deleted: past their end time, or with no tick left.
    ended: list[UUID] = field(default_factory=list)
    threads_deleted: int = 0


class Scheduler(PeriodicService[SchedulerConfig]):
    name = "scheduler"

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: GraphRegistry,
        build_request: RequestBuilder,
        config: SchedulerConfig | None = None,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._build = build_request
        super().__init__(config or SchedulerConfig())

    async def run_once(self) -> SchedulerResult:
        result = SchedulerResult()
        # A full batch may mean more is due: keep going. Every claimed row
        # moves past now or is deleted, so no pass claims a row twice.
        while await self._fire_batch(result) >= self.config.batch_size:
            pass
        result.threads_deleted = await self._delete_ended_threads()
        if result.fired or result.skipped or result.ended or result.threads_deleted:
            log.debug(
                "scheduler fired %d, skipped %d, ended %d crons; deleted %d temporary threads",
                len(result.fired),
                len(result.skipped),
                len(result.ended),
                result.threads_deleted,
                extra={
                    "event": "scheduler_pass",
                    "fired": len(result.fired),
                    "skipped": len(result.skipped),
                    "ended": len(result.ended),
                },
            )
        return result

    async def _fire_batch(self, result: SchedulerResult) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.claim_due_crons, self.config.batch_size)
            for row in rows:
                await self._tick(conn, row, result)
        return len(rows)

    async def _tick(
        self, conn: asyncpg.Connection, row: asyncpg.Record, result: SchedulerResult
    ) -> None:
        cron_id: UUID = row["cron_id"]
        payload = loads(row["payload"]) or {}
        end = row["end_time"]
        if end is not None and end < row["next_run_at"]:
            await self._end(conn, cron_id, result, "its end time has passed")
            return
        if payload.get(crons.ENABLED, True) is False:
            result.skipped.append(cron_id)
        else:
            run_id = await self._submit(conn, row, payload)
            if run_id is None:
                result.skipped.append(cron_id)
            else:
                result.fired.append(run_id)
        try:
            due = crons.next_run(row["schedule"], row["now"], payload.get(crons.TIMEZONE))
        except Invalid as exc:
            await self._end(conn, cron_id, result, f"it has no next tick: {exc}")
            return
        if end is not None and due > end:
            await self._end(conn, cron_id, result, "its next tick is after its end time")
            return
        await conn.execute(queries.advance_cron, cron_id, due)

    async def _submit(
        self, conn: asyncpg.Connection, row: asyncpg.Record, payload: dict[str, Any]
    ) -> UUID | None:
        """The run for this tick, in a savepoint: a refused submit leaves the
        claim (and the rest of the batch) intact."""
        cron_id: UUID = row["cron_id"]
        try:
            async with conn.transaction():
                request = self._build(
                    payload, row["assistant_id"], row["thread_id"], loads(row["auth_user"])
                )
                request.metadata = {**request.metadata, CRON_ID_KEY: str(cron_id)}
                run = await runs.create(conn, self._registry, request)
                if row["thread_id"] is None:
                    tag: dict[str, Any] = {CRON_ID_KEY: str(cron_id)}
                    if request.on_completion == "delete":
                        tag.update(TEMPORARY_TAG)
                    await conn.execute(queries.tag_thread, run["thread_id"], json.dumps(tag))
        except (NotFound, Conflict) as exc:
            log.warning(
                "cron %s skipped a tick: %s",
                cron_id,
                exc,
                extra={"event": "cron_skipped", "cron_id": str(cron_id)},
            )
            return None
        except DATABASE_AWAY:
            # The database away aborts the pass (the tick is retried);
            # anything else one cron raises only skips that cron's tick.
            raise
        except Exception:
            # A payload that no longer validates, a value PostgreSQL refuses:
            # this cron's problem, not the other crons'.
            log.exception(
                "cron %s could not create its run",
                cron_id,
                extra={"event": "cron_failed", "cron_id": str(cron_id)},
            )
            return None
        run_id: UUID = run["run_id"]
        log.info(
            "cron %s fired run %s",
            cron_id,
            run_id,
            extra={"event": "cron_fired", "cron_id": str(cron_id), "run_id": str(run_id)},
        )
        return run_id

    async def _end(
        self, conn: asyncpg.Connection, cron_id: UUID, result: SchedulerResult, why: str
    ) -> None:
        # The scheduler's own decision, not a request's: every row.
        await conn.execute(queries.delete_cron, cron_id, EVERYTHING.filter)
        result.ended.append(cron_id)
        log.info(
            "cron %s deleted: %s",
            cron_id,
            why,
            extra={"event": "cron_ended", "cron_id": str(cron_id)},
        )

    async def _delete_ended_threads(self) -> int:
        """Temporary threads whose run ended: a cron's at once (nobody reads
        its result); a stateless run's only after ``stateless_grace``, since
        the process that serves it deletes it itself once the client has the
        result. This pass is for when that process died first."""
        deleted = 0
        for tag, grace in (
            (TEMPORARY_TAG, 0.0),
            (runs.TEMPORARY_THREAD_TAG, self.config.stateless_grace),
        ):
            rows = await self._pool.fetch(
                queries.list_ended_temporary_threads,
                json.dumps(tag),
                self.config.cleanup_batch,
                grace,
            )
            for row in rows:
                deleted += await runs.delete_temporary_thread(self._pool, row["thread_id"])
        return deleted

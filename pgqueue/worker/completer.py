"""The worker's own writes at the end of a run: final outcomes (batched),
hand-backs at shutdown, and rollbacks of cancelled runs.

Every one is fenced by the run's lease (run, attempt, worker, still
running): a worker that lost a run writes nothing, and is told so. Runs that
finish together share one statement; while a write fails on a lost
connection it is retried, the runs still held and heartbeated meanwhile.
(A handler that writes its outcome itself, like the graph executor, does so
on its own connection and uses none of this.)
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import ClaimedRun, Completion, EncodedJson
from pgqueue.db.sql import queries
from pgqueue.errors import LeaseLost, fenced

log = logging.getLogger(__name__)

# Retry delays of a final write that failed on the connection.
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 2.0


def output_completion(run: ClaimedRun, output: Any) -> Completion:
    """The final write for a handler that returned ``output``."""
    try:
        # Encoded once, here: a bad output fails only its own run, and the
        # batched final write sends this text as it is.
        encoded = None if output is None else EncodedJson(json.dumps(output))
    except (TypeError, ValueError) as exc:
        error = {"error": "OutputNotSerializable", "message": f"run output is not JSON: {exc}"}
        return Completion(run.run_id, run.attempt, "error", error=error)
    return Completion(run.run_id, run.attempt, "success", output=encoded)


def error_completion(run: ClaimedRun, exc: Exception, retry_delay: float | None) -> Completion:
    """The final write for a handler that raised ``exc``: retried after
    ``retry_delay`` seconds while attempts remain, if not None."""
    log.info(
        "run raised %s: %s",
        type(exc).__name__,
        exc,
        extra={"event": "run_failed", "run_id": str(run.run_id), "attempt": run.attempt},
    )
    error = {"error": type(exc).__name__, "message": str(exc)}
    return Completion(run.run_id, run.attempt, "error", error=error, retry_delay=retry_delay)


class Completer:
    def __init__(self, pool: asyncpg.Pool, worker_id: str) -> None:
        self._pool = pool
        self._worker_id = worker_id
        self._pending: list[tuple[Completion, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def complete(self, completion: Completion) -> bool:
        """Write a final outcome; True if the lease was still held (else
        nothing was written). Runs finishing together share one statement."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((completion, future))
        if self._flusher is None or self._flusher.done():
            # A context of its own: it writes many runs' outcomes, and its
            # log lines must not name the run whose completion started it.
            self._flusher = asyncio.create_task(self._flush(), context=contextvars.Context())
        return await future

    def abandon(self) -> None:
        """Stop retrying: the database is unreachable past the lease window,
        and once it answers these writes would be fenced out anyway."""
        if self._flusher is not None:
            self._flusher.cancel()

    async def _flush(self) -> None:
        delay = FIRST_RETRY_DELAY
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                held = await queue.complete(self._pool, self._worker_id, [c for c, _ in batch])
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The runs stay held (and heartbeated) while we retry.
                log.warning(
                    "final write failed, retrying: %s", exc, extra={"event": "complete_failed"}
                )
                self._pending = batch + self._pending
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            delay = FIRST_RETRY_DELAY
            for c, future in batch:
                if not future.done():
                    future.set_result(c.run_id in held)

    async def release(self, run: ClaimedRun) -> None:
        """Hand a run stopped by shutdown back to the queue (fenced: a run
        that reached a final status meanwhile keeps it), waking a worker."""
        try:
            released = await queue.release(self._pool, self._worker_id, [run.lease])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "could not hand back run %s: %s; the sweeper will once its lease expires",
                run.run_id,
                exc,
                extra={"event": "release_failed", "run_id": str(run.run_id)},
            )
            return
        log.info(
            "run %s %s",
            run.run_id,
            "handed back to the queue" if released else "had already ended",
            extra={"event": "run_released", "run_id": str(run.run_id), "attempt": run.attempt},
        )

    async def rollback(self, run: ClaimedRun) -> bool:
        """Delete a run cancelled with 'rollback'; False if the lease was
        gone (then nothing was deleted)."""
        try:
            with fenced(f"run {run.run_id} rollback"):
                await self._pool.execute(
                    queries.rollback_run, run.run_id, run.attempt, self._worker_id
                )
        except LeaseLost:
            return False
        return True

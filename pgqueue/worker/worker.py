"""A worker: claims runs in batches, executes them, writes outcomes fenced.

The work is a ``Handler`` (``pgqueue.core.handler``): any
``async def handler(run: ClaimedRun) -> output``, or an object with the
whole contract, like the graph executor. The worker claims as many runs as
it has free slots, sleeps until a NOTIFY (or a slot frees, or the poll
interval / next delayed run is due), and hands final writes to the
completer, which batches those that finish together into one statement. A
lease the heartbeat found taken away cancels its task; a final write that
matches no row is reported as a lost lease, never silently dropped. Leases
are renewed by ``heartbeat``; a graceful stop drains (``shutdown``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import asyncpg

from pgqueue.core import queue
from pgqueue.core.handler import Finished, Handler, HandlerFunction, as_handler, on_finishing
from pgqueue.core.notifier import Notifier
from pgqueue.core.queue import ClaimedRun, Completion
from pgqueue.db import pools as db
from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.observe import logs
from pgqueue.types import CANCEL_CHANNEL, WAKE_CHANNEL, Lease
from pgqueue.worker.completer import Completer, error_completion, output_completion
from pgqueue.worker.config import WorkerConfig, WorkerStats
from pgqueue.worker.connection import LazyConnection
from pgqueue.worker.heartbeat import Heartbeat, LeaseTable
from pgqueue.worker.shutdown import drain

log = logging.getLogger(__name__)


# What _outcome returns for a run stopped by shutdown: hand it back.
_RELEASE = object()


class Worker:
    def __init__(
        self,
        dsn: str,
        handler: Handler | HandlerFunction,
        config: WorkerConfig | None = None,
        *,
        notifier: Notifier | None = None,
    ) -> None:
        self.dsn = dsn
        # A bare function is wrapped here, once (see core.handler).
        self.handler: Handler = as_handler(handler)
        self.config = config or WorkerConfig()
        self.worker_id = (
            self.config.worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid7().hex[-12:]}"
        )
        self.stats = WorkerStats()
        self.leases = LeaseTable()
        self._notifier = notifier
        self._owns_notifier = notifier is None
        self._pool: asyncpg.Pool | None = None
        # The claim loop is serial: one plain connection, no pool hops on the
        # wake-to-claim path. Reconnected on demand after an error.
        self._claim_conn = LazyConnection(dsn, server_settings={"synchronous_commit": "off"})
        # Keyed by lease, not run id: after a sweep this very worker may claim
        # a newer attempt of a run whose stale attempt is still unwinding.
        self._tasks: dict[Lease, asyncio.Task[None]] = {}
        self._completing: set[Lease] = set()
        # Handlers still executing. A run's slot frees when its handler
        # returns; its fenced final write then flushes (batched, lease still
        # heartbeated) while the next claim is already on its way.
        self._executing = 0
        self._lost: set[Lease] = set()
        # Leases whose run a user cancelled (NOTIFY on the cancel channel).
        self._cancelled: dict[Lease, str] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        # Shutdown past its grace: runs being stopped to be handed back.
        self._hurried = asyncio.Event()
        self._releasing: set[Lease] = set()
        self._completer: Completer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.heartbeat = Heartbeat(
            dsn,
            self.worker_id,
            self.leases,
            concurrency=self.config.concurrency,
            on_lost=self._on_lost_threadsafe,
            on_dead=self._on_dead_threadsafe,
            config=self.config.heartbeat,
        )
        self.started = asyncio.Event()
        # Liveness: set when the heartbeat could not renew the leases for
        # longer than the lease window. run() then returns early and the
        # process should exit non-zero (a supervisor restarts it).
        self.unhealthy: str | None = None

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        """Claim and execute until ``stop()``; then wait for in-flight runs."""
        self._loop = asyncio.get_running_loop()
        sync = {} if self.config.synchronous_completion else {"synchronous_commit": "off"}
        self._pool = await db.create_pool(
            self.dsn, max_size=self.config.pool_size, server_settings=sync, name="worker"
        )
        self._completer = Completer(self._pool, self.worker_id)
        await self._claim_conn.get()
        if self._notifier is None:
            self._notifier = Notifier(self.dsn)
            await self._notifier.start()
        unsubscribe = self._notifier.subscribe(WAKE_CHANNEL, self._on_notify)
        unsubscribe_cancel = self._notifier.subscribe(CANCEL_CHANNEL, self._on_cancel)
        await self._pool.execute(
            queries.register_worker,
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            self.config.concurrency,
        )
        self.heartbeat.start()
        log.info("worker started", extra={"event": "worker_started", "worker_id": self.worker_id})
        self.started.set()
        try:
            await self._claim_loop()
            await drain(
                self._tasks,
                hurried=self._hurried,
                hurry=self.hurry,
                grace=self.config.shutdown_grace,
                unwind=self.config.shutdown_unwind,
                worker_id=self.worker_id,
            )
        finally:
            unsubscribe()
            unsubscribe_cancel()
            for task in self._tasks.values():
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            # The handler's own resources (the graph executor's checkpointer
            # connections) close only now, once no run uses them.
            await self.handler.aclose()
            self.heartbeat.stop()
            with contextlib.suppress(Exception):
                # Bounded: after a liveness exit the database may not answer.
                await self._pool.execute(
                    queries.unregister_worker, self.worker_id, timeout=db.CONNECT_TIMEOUT
                )
            if self._owns_notifier:
                await self._notifier.stop()
            # Bounded: a database that stopped answering must not hold up
            # the exit (a liveness exit happens exactly then).
            await db.close_pool(self._pool)
            await self._claim_conn.close()
            log.info(
                "worker stopped", extra={"event": "worker_stopped", "worker_id": self.worker_id}
            )

    def stop(self) -> None:
        """Stop claiming. In-flight runs get ``shutdown_grace`` seconds to
        finish; then they are handed back to the queue and ``run()``
        returns. Called again (a second signal): hand them back now."""
        if self._stopping:
            self.hurry()
            return
        self._stopping = True
        self._wakeup.set()

    def hurry(self) -> None:
        """Stop every in-flight run now and hand it back (see ``stop``).
        Called again, cancels again the runs not yet handed back: a cancel
        can be absorbed (see ``shutdown``)."""
        self._hurried.set()
        for lease, task in list(self._tasks.items()):
            # A run whose outcome is being written is done: let it be.
            if lease not in self._completing:
                self._releasing.add(lease)
                task.cancel()

    # -- claiming ----------------------------------------------------------

    def _on_notify(self, _payload: str) -> None:
        self._wakeup.set()

    def _on_cancel(self, payload: str) -> None:
        run_id, _, action = payload.partition(":")
        for lease, task in list(self._tasks.items()):
            if str(lease.run_id) == run_id and lease not in self._completing:
                self._cancelled[lease] = action or "interrupt"
                task.cancel()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            # Backpressure: never more than a few batches awaiting their write.
            free = min(
                self.config.concurrency - self._executing,
                4 * self.config.concurrency - len(self._tasks),
            )
            timeout: float | None = None
            if free > 0:
                try:
                    conn = await self._claim_conn.get()
                    claimed = await queue.claim(conn, self.worker_id, free)
                    self.stats.claim_queries += 1
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("claim failed: %s", exc, extra={"event": "claim_failed"})
                    self._claim_conn.drop()
                    claimed = []
                    timeout = 1.0
                for run in claimed:
                    self._start(run)
                if len(claimed) == free:
                    continue  # maybe more ready; the loop waits once slots are full
                if timeout is None:
                    timeout = self.config.poll_interval
                    with contextlib.suppress(
                        OSError, asyncpg.PostgresError, asyncpg.InterfaceError
                    ):
                        due = await queue.next_due_in(await self._claim_conn.get())
                        if due is not None:
                            timeout = min(timeout, due + 0.001)
            # asyncio.timeout, not wait_for: no extra task on the wake path.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    def _start(self, run: ClaimedRun) -> None:
        self.stats.claimed += 1
        if run.lease in self._tasks:
            # The server forgot our claim (crash before its async commit was
            # flushed) and gave the very same lease back to us: the task we
            # already run for it is the right one.
            return
        # Only a re-claimed run (attempt > 1) can have a stale local attempt.
        stale = (
            {lease for lease in self._tasks if lease.run_id == run.run_id}
            if run.attempt > 1
            else None
        )
        if stale:
            self._on_lost(stale)  # we hold a newer attempt: the old one is a zombie
        self.leases.add(run.lease)
        self._executing += 1
        self._tasks[run.lease] = asyncio.create_task(
            self._execute(run), name=f"run-{run.run_id}-{run.attempt}"
        )

    # -- executing ---------------------------------------------------------

    async def _execute(self, run: ClaimedRun) -> None:
        # This task's own context: finishing() in the handler marks this
        # run only, and every log line about it names it.
        on_finishing(lambda: self._completing.add(run.lease))
        logs.bind_run(run.run_id, run.thread_id, run.attempt)
        try:
            try:
                completion = await self._outcome(run)
            finally:
                self._executing -= 1
                self._wakeup.set()  # an execution slot is free
            if completion is None:
                return
            assert self._completer is not None
            if completion is _RELEASE:
                # The hand-back is this run's final write: no repeated
                # cancel of a hurry may cut it.
                self._completing.add(run.lease)
                await self._completer.release(run)
                return
            assert isinstance(completion, Completion)
            self._completing.add(run.lease)
            held = await self._completer.complete(completion)
            if not held:
                self._report_lease_lost(run, "final write matched no row")
            elif completion.status == "success":
                self.stats.count("success", run)
            elif (
                completion.retry_delay is not None and run.attempt - run.releases < run.max_attempts
            ):
                self.stats.count("retry", run)
            else:
                self.stats.count(completion.status, run)
        except Exception:
            log.exception(
                "run bookkeeping failed",
                extra={"event": "run_internal_error", "run_id": str(run.run_id)},
            )
        finally:
            self._completing.discard(run.lease)
            self._lost.discard(run.lease)
            self._releasing.discard(run.lease)
            self._cancelled.pop(run.lease, None)
            self.leases.discard(run.lease)
            self._tasks.pop(run.lease, None)
            self._wakeup.set()

    async def _outcome(self, run: ClaimedRun) -> Completion | object | None:
        handles_cancel = self.handler.handles_cancel
        if run.cancel_action and not handles_cancel:
            # Cancelled while a worker that died held it: finish the cancel.
            return await self._cancel_plain(run, run.cancel_action)
        try:
            output = await self.handler(run)
        except asyncio.CancelledError:
            if run.lease in self._lost:
                self._report_lease_lost(run, "heartbeat found the lease taken away")
                return None
            if run.lease in self._releasing:
                current = asyncio.current_task()
                # Every cancel of the hurry (it may have cancelled twice).
                while current is not None and current.cancelling():
                    current.uncancel()
                return _RELEASE
            action = self._cancelled.pop(run.lease, None)
            if action is not None and not handles_cancel:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                return await self._cancel_plain(run, action)
            raise
        except Exception as exc:
            retry = self.config.is_retriable(exc)
            delay = self.config.backoff(run.attempt - run.releases) if retry else None
            return error_completion(run, exc, delay)
        if isinstance(output, Finished):
            if output.status is None:
                self._report_lease_lost(run, "the handler's fenced final write matched no row")
            else:
                self.stats.count(output.status, run)
            return None
        return output_completion(run, output)

    async def _cancel_plain(self, run: ClaimedRun, action: str) -> Completion | None:
        """Cancel for handlers without checkpoints: interrupt ends the run
        'interrupted'; rollback deletes it (fenced, like any final write)."""
        if action != "rollback":
            return Completion(run.run_id, run.attempt, "interrupted")
        assert self._completer is not None
        if not await self._completer.rollback(run):
            self._report_lease_lost(run, "rollback found the lease gone")
        else:
            self.stats.count("rolled_back", run)
        return None

    def _report_lease_lost(self, run: ClaimedRun, why: str) -> None:
        self.stats.count("lease_lost", run)
        log.warning(
            "lease lost for run %s attempt %s: %s; its result was not written",
            run.run_id,
            run.attempt,
            why,
            extra={"event": "lease_lost", "run_id": str(run.run_id), "attempt": run.attempt},
        )

    def _on_dead_threadsafe(self, silent: float) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_dead, silent)

    def _on_dead(self, silent: float) -> None:
        """The heartbeat has been failing for longer than the lease: sweepers
        are handing our runs to others. Stop at once (no grace: nothing we
        run can write while the database is unreachable, and when it comes
        back our leases are gone) and let run() return; the caller exits
        non-zero."""
        self.unhealthy = f"no heartbeat for {silent:.1f} s, longer than the lease"
        self.stop()
        self.hurry()
        # hurry() leaves runs whose outcome is being written alone; here that
        # write is retrying against the unreachable database, and would be
        # fenced out once it answers: stop waiting for it (the sweeper
        # settles those runs like any other expired lease).
        if self._completer is not None:
            self._completer.abandon()
        for lease in list(self._completing):
            task = self._tasks.get(lease)
            if task is not None:
                task.cancel()

    def _on_lost_threadsafe(self, lost: set[Lease]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_lost, lost)

    def _on_lost(self, lost: set[Lease]) -> None:
        for lease in lost:
            task = self._tasks.get(lease)
            # A run that just wrote its outcome also looks "lost" to a beat
            # taken a moment later: leave those alone.
            if task is None or lease in self._completing:
                continue
            self._lost.add(lease)
            task.cancel()

"""A worker's settings, and the counters it keeps of what it did."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pgqueue.core.queue import ClaimedRun
from pgqueue.observe import metrics
from pgqueue.worker.heartbeat import HeartbeatConfig


def _always(_exc: BaseException) -> bool:
    return True


@dataclass
class WorkerConfig:
    concurrency: int = 10
    # Fallback only: NOTIFY wakes an idle worker in milliseconds.
    poll_interval: float = 5.0
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    # Failed attempts come back after base * 2**(n-1) seconds (+-25% jitter).
    retry_backoff_base: float = 1.0
    retry_backoff_max: float = 300.0
    is_retriable: Callable[[BaseException], bool] = _always
    worker_id: str | None = None
    pool_size: int = 3
    # Claims skip the fsync wait (see claim_runs in queue.sql for why that
    # is safe); final writes wait for it unless this is turned off.
    synchronous_completion: bool = True
    # Graceful shutdown: in-flight runs get this long to finish, their
    # leases heartbeated all along; then (or at a second stop()) they are
    # stopped and handed back to the queue, attempt not counted. 25 s fits
    # inside the 30 s most supervisors (Kubernetes, systemd) wait.
    shutdown_grace: float = 25.0
    # How long stopped runs get to unwind and be handed back before the
    # worker gives up on them (their leases then expire: the sweeper).
    shutdown_unwind: float = 10.0

    def backoff(self, failures: int) -> float:
        """Seconds until a run that has failed ``failures`` times runs again."""
        delay = min(
            self.retry_backoff_base * 2 ** max(failures - 1, 0),
            self.retry_backoff_max,
        )
        # Jitter: runs that failed together (a database blip) do not all
        # come back in the same instant.
        return delay * random.uniform(0.75, 1.25)


@dataclass
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    lease_lost: int = 0
    claim_queries: int = 0

    def count(self, outcome: str, run: ClaimedRun) -> None:
        """An attempt ended: ``outcome`` is the status written ("success",
        "error", "interrupted", ...), "retry" (failed, queued again) or
        "lease_lost" (nothing written). Also this process's metrics."""
        if outcome == "lease_lost":
            self.lease_lost += 1
            metrics.LEASES_LOST.inc()
            return
        name = {"success": "succeeded", "retry": "retried"}.get(outcome, "failed")
        setattr(self, name, getattr(self, name) + 1)
        # A run made by hand, not by queue.claim, has no claim time.
        seconds = time.monotonic() - run.claimed_at if run.claimed_at else 0.0
        metrics.run_ended(outcome, seconds)

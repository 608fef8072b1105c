"""pgqueue: a Postgres-only run queue for LangGraph agents."""

from __future__ import annotations

from pgqueue.core import queue
from pgqueue.core.notifier import Notifier, NotifierConfig
from pgqueue.core.queue import ClaimedRun, Completion, NewRun, SubmittedRun, SweepResult
from pgqueue.maintenance.sweeper import Sweeper, SweeperConfig
from pgqueue.worker.heartbeat import HeartbeatConfig
from pgqueue.worker.worker import Worker, WorkerConfig

__all__ = [
    "ClaimedRun",
    "Completion",
    "HeartbeatConfig",
    "NewRun",
    "Notifier",
    "NotifierConfig",
    "SubmittedRun",
    "SweepResult",
    "Sweeper",
    "SweeperConfig",
    "Worker",
    "WorkerConfig",
    "queue",
]

"""pgqueue: a Postgres-only run queue for LangGraph agents."""

from __future__ import annotations

from pgqueue.heartbeat import HeartbeatConfig
from pgqueue.notifier import Notifier, NotifierConfig
from pgqueue.queue import ClaimedRun, Completion, NewRun, SubmittedRun, SweepResult
from pgqueue.sweeper import Sweeper, SweeperConfig
from pgqueue.worker import Worker, WorkerConfig

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
]

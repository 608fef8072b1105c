"""pgqueue: a Postgres-only run queue for LangGraph agents.

The public names below load on first use (PEP 562), not with the package:
``python -m pgqueue`` and every ``pgqueue.x.y`` import then start without
importing the worker, and a SIGINT at start-up reaches the command's own
handling (see ``__main__``) instead of killing an import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgqueue.core import queue
    from pgqueue.core.notifier import Notifier, NotifierConfig
    from pgqueue.core.queue import ClaimedRun, Completion, NewRun, SubmittedRun, SweepResult
    from pgqueue.maintenance.sweeper import Sweeper, SweeperConfig
    from pgqueue.worker.heartbeat import HeartbeatConfig
    from pgqueue.worker.worker import Worker, WorkerConfig

# Public name -> the module that defines it ("queue" is the module itself).
_EXPORTS = {
    "ClaimedRun": "pgqueue.core.queue",
    "Completion": "pgqueue.core.queue",
    "HeartbeatConfig": "pgqueue.worker.heartbeat",
    "NewRun": "pgqueue.core.queue",
    "Notifier": "pgqueue.core.notifier",
    "NotifierConfig": "pgqueue.core.notifier",
    "SubmittedRun": "pgqueue.core.queue",
    "SweepResult": "pgqueue.core.queue",
    "Sweeper": "pgqueue.maintenance.sweeper",
    "SweeperConfig": "pgqueue.maintenance.sweeper",
    "Worker": "pgqueue.worker.worker",
    "WorkerConfig": "pgqueue.worker.worker",
}

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


def __getattr__(name: str) -> Any:
    if name == "queue":
        return importlib.import_module("pgqueue.core.queue")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pgqueue' has no attribute {name!r}")

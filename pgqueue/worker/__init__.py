"""The worker: claims runs and runs their handler (the contract is
``pgqueue.core.handler``); ``heartbeat`` renews their leases off the event
loop, ``completer`` writes their outcomes fenced and batched, and
``shutdown`` drains them when the worker stops."""

from pgqueue.worker.worker import Worker, WorkerConfig

__all__ = ["Worker", "WorkerConfig"]

"""The worker: claims runs, runs their handler, heartbeats their leases off
the event loop, and writes outcomes fenced and batched."""

from pgqueue.worker.worker import Worker, WorkerConfig

__all__ = ["Worker", "WorkerConfig"]

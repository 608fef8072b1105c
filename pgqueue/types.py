"""The bottom of the house: names every layer shares.

A lease, the NOTIFY channels, the run row's vocabulary, and the alias for
"something asyncpg can run a query on". Nothing here imports pgqueue, so any
module may import this one without creating a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias
from uuid import UUID

if TYPE_CHECKING:
    import asyncpg

# Any of asyncpg's query runners: a connection (the caller's transaction) or
# a pool. Not "Executor": that reads as the graph executor one layer up.
Queryable: TypeAlias = "asyncpg.Connection[Any] | asyncpg.Pool[Any]"


class Lease(NamedTuple):
    """One worker's hold on one attempt of a run.

    ``attempt`` is the fencing token: every write the holder makes (a
    checkpoint, an event, the final status) names the lease and matches no
    row once the attempt has moved on. A tuple, so a worker keys its tables
    by it cheaply; a newer attempt of the same run is a different lease, which
    lets a worker tell a stale attempt still unwinding from the current one.
    """

    run_id: UUID
    attempt: int
    worker_id: str

    def setting(self) -> str:
        """The value of the ``pgqueue.lease`` session setting that the
        checkpoint tables' fence trigger reads (``run_id:attempt:worker``)."""
        return f"{self.run_id}:{self.attempt}:{self.worker_id}"


# NOTIFY channels. Payloads are ids only: a NOTIFY payload over 8,000 bytes
# fails, and listeners read what they need from the rows.
# A run became claimable: wakes one idle worker.
WAKE_CHANNEL = "pgqueue_runs"
# Payload "run_id:action": tells the worker holding a run to stop it.
CANCEL_CHANNEL = "pgqueue_cancel"
# Payload "run_id:seq" (or "run_id:end"): a run's stream has new events.
EVENTS_CHANNEL = "pgqueue_events"

# A run in one of these has ended; nothing will write it again.
TERMINAL_STATUSES = frozenset({"success", "error", "timeout", "interrupted"})
CANCEL_ACTIONS = ("interrupt", "rollback")
MULTITASK_STRATEGIES = ("reject", "enqueue", "interrupt", "rollback")

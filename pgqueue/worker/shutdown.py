"""A worker's graceful shutdown: drain, then hand back what is left.

Once a worker stops claiming, its in-flight runs get a grace period to
finish, their leases heartbeated all along (the heartbeat stops only after
this). Past it (or at a second stop signal) the rest are hurried: cancelled
and handed back to the queue with their attempt not counted. Those get a
bounded while to unwind; a run that does not stop even then is left to its
lease, which expires, and the sweeper requeues it.

While they unwind, the runs still there are cancelled again every
``REDELIVER`` seconds: a cancel can be absorbed without a trace (on Python
3.11 ``asyncio.wait_for`` returns its result instead of raising when the
cancel meets the awaited future's completion; psycopg_pool's ``getconn``
waits that way), and the run then goes on as if never asked to stop. A
repeated cancel may cut a run's cleanup short (its last checkpoints, kept
for the next attempt); that cleanup was asked to be quick anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

# Seconds between cancels of a hurried run that is still there (see above).
REDELIVER = 1.0


async def drain(
    tasks: Mapping[Any, asyncio.Task[None]],
    *,
    hurried: asyncio.Event,
    hurry: Callable[[], None],
    grace: float,
    unwind: float,
    worker_id: str,
) -> None:
    """Wait up to ``grace`` seconds for ``tasks`` (a live view: finished
    runs leave it) unless ``hurried`` is set first; then ``hurry()`` and wait
    up to ``unwind`` seconds for the stopped runs to be handed back,
    calling ``hurry()`` again every ``REDELIVER`` seconds meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    if tasks:
        log.info(
            "draining %d run(s) for up to %.0f s",
            len(tasks),
            grace,
            extra={"event": "worker_draining", "worker_id": worker_id},
        )
    hurried_wait = asyncio.ensure_future(hurried.wait())
    try:
        while tasks and not hurried.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                hurry()
                break
            await asyncio.wait(
                [*tasks.values(), hurried_wait],
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
    finally:
        hurried_wait.cancel()
    deadline = loop.time() + unwind
    while tasks and (remaining := deadline - loop.time()) > 0:
        await asyncio.wait(list(tasks.values()), timeout=min(remaining, REDELIVER))
        if tasks:
            hurry()
    if tasks:
        log.error(
            "%d run(s) did not stop within %.0f s; their leases will expire and "
            "the sweeper will requeue them",
            len(tasks),
            unwind,
            extra={"event": "worker_drain_stuck", "worker_id": worker_id},
        )

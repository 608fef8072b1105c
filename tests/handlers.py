"""Handlers that subprocess workers in the tests run (``--handler tests.handlers:NAME``)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from pgqueue.core.queue import ClaimedRun


async def noop(run: ClaimedRun) -> None:
    return None


async def sleep_first_attempt(run: ClaimedRun) -> dict[str, Any]:
    """Sleeps ``kwargs.sleep`` seconds on attempt 1 only, so a second worker
    that takes the run over finishes it at once."""
    if run.attempt == 1:
        await asyncio.sleep(float(run.kwargs.get("sleep", 60)))
    return {"attempt": run.attempt}


async def sleep(run: ClaimedRun) -> dict[str, Any]:
    await asyncio.sleep(float(run.kwargs.get("sleep", 1)))
    return {"attempt": run.attempt}


async def gated_first_attempt(run: ClaimedRun) -> dict[str, Any]:
    """On attempt 1, waits until the file ``kwargs.gate`` exists (the test
    makes it when the handler is to go on); later attempts return at once."""
    if run.attempt == 1:
        await wait_for_file(run.kwargs["gate"])
    return {"attempt": run.attempt}


async def wait_for_file(path: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        await asyncio.sleep(0.02)


async def block_loop(run: ClaimedRun) -> dict[str, Any]:
    """Blocks the worker's event loop: nothing else on it runs meanwhile."""
    time.sleep(float(run.kwargs.get("sleep", 3)))
    return {"attempt": run.attempt}


async def scripted(run: ClaimedRun) -> dict[str, Any]:
    """On attempt 1 with ``kwargs.hold``, holds the run until the worker
    dies or cancels it; raises on attempts up to ``kwargs.fail`` (0:
    succeeds at once). Logs a line of its own, which names no run: the
    worker's context does."""
    logging.getLogger("tests.handlers").info("scripted attempt %d", run.attempt)
    if run.attempt == 1 and run.kwargs.get("hold"):
        await asyncio.Event().wait()
    if run.attempt <= int(run.kwargs.get("fail", 0)):
        raise RuntimeError(f"attempt {run.attempt} fails on purpose")
    return {"attempt": run.attempt}

"""Webhooks: POST a run's outcome to the URL its request named.

Sent by the worker that finished the run, after the final status committed,
retried with backoff on connection errors, 429 and 5xx. A webhook that
still fails is logged, never fatal: the run's outcome is already stored.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from pgqueue.db.encoding import dumps

log = logging.getLogger(__name__)


@dataclass
class WebhookConfig:
    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 10.0


def payload(
    run: Any,
    status: str,
    output: Any,
    error: dict[str, Any] | None,
    started_at: datetime,
) -> dict[str, Any]:
    """The run as the platform posts it: the run's fields plus its outcome."""
    now = datetime.now(UTC).isoformat()
    kwargs = {k: v for k, v in run.kwargs.items() if k != "graph_id"}
    body = {
        "run_id": str(run.run_id),
        "thread_id": str(run.thread_id) if run.thread_id else None,
        "assistant_id": str(run.assistant_id) if run.assistant_id else None,
        "metadata": run.metadata,
        "kwargs": kwargs,
        "status": status,
        "attempt": run.attempt,
        "run_started_at": started_at.isoformat(),
        "run_ended_at": now,
        "webhook_sent_at": now,
        "values": output,
    }
    if error is not None:
        body["error"] = error
    return body


async def deliver(url: str, body: dict[str, Any], config: WebhookConfig) -> bool:
    content = dumps(body).encode()
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=config.timeout) as client:
        for attempt in range(1, config.attempts + 1):
            why: str
            try:
                response = await client.post(url, content=content, headers=headers)
                if response.status_code < 400:
                    return True
                why = f"HTTP {response.status_code}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # the receiver refused it; asking again won't help
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if attempt < config.attempts:
                await asyncio.sleep(config.backoff * 2 ** (attempt - 1))
    log.warning(
        "webhook for run %s failed after %s attempt(s): %s",
        body.get("run_id"),
        attempt,
        why,
        extra={"event": "webhook_failed", "run_id": body.get("run_id"), "url": url},
    )
    return False


class Deliveries:
    """Webhooks on their way, each in a task of its own: the run does not
    wait for its webhook. Held here because the event loop holds tasks only
    weakly, and waited for, a while, before the process lets go."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[bool]] = set()

    def send(self, url: str, body: dict[str, Any], config: WebhookConfig) -> None:
        task = asyncio.create_task(deliver(url, body, config))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for those still in flight (those
        slower are left to end with the event loop, not cancelled here)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)

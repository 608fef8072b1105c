"""Webhooks: POST a run's outcome to the URL its request named.

Sent by the worker that finished the run, after the final status committed,
retried with backoff on connection errors, 429 and 5xx. A webhook that
still fails is logged, never fatal: the run's outcome is already stored.

The URL is checked against langgraph.json's policy (webhook_policy.py) at
submit and again here, since a name may resolve elsewhere by now; the
delivery then connects to the addresses that check judged, not to a second
lookup's (which DNS rebinding could aim inward). Redirects are not
followed, for the same reason. With a secret, each request is signed:

    X-Pgqueue-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from pgqueue.db.encoding import dumps
from pgqueue.execution.webhook_policy import Target, WebhookPolicy

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Pgqueue-Signature"


@dataclass
class WebhookConfig:
    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 10.0
    policy: WebhookPolicy = field(default_factory=WebhookPolicy)
    # langgraph.json's webhooks.headers, templates resolved (by pgqueue.cli:
    # the library never reads the environment). Kept out of reprs: tokens.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    # Signs each delivery (PGQUEUE_WEBHOOK_SECRET); None: unsigned.
    secret: str | None = field(default=None, repr=False)


def signature(secret: str, content: bytes, at: int | None = None) -> str:
    """The signature header's value for ``content`` sent at ``at`` (unix
    seconds, now if None): the timestamp is signed too, so a receiver can
    refuse an old request replayed."""
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.".encode() + content, hashlib.sha256)
    return f"t={at},v1={mac.hexdigest()}"


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
    run_id = body.get("run_id")
    target = await config.policy.resolve(url)
    if isinstance(target, str):
        log.warning(
            "webhook for run %s not sent: %s",
            run_id,
            target,
            extra={"event": "webhook_refused", "run_id": run_id, "url": url},
        )
        return False
    content = dumps(config.policy.select(body)).encode()
    async with httpx.AsyncClient(timeout=config.timeout, follow_redirects=False) as client:
        for attempt in range(1, config.attempts + 1):
            why: str
            headers = {**config.headers, "content-type": "application/json"}
            if config.secret:
                headers[SIGNATURE_HEADER] = signature(config.secret, content)
            try:
                response = await _post(client, target, content, headers)
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
        run_id,
        attempt,
        why,
        extra={"event": "webhook_failed", "run_id": run_id, "url": url},
    )
    return False


async def _post(
    client: httpx.AsyncClient, target: Target, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """POST to the first of the target's addresses that takes a connection.
    The URL names the address; Host (and TLS's server name, which the
    certificate is checked against) still name the host."""
    url = target.url
    headers = {**headers, "host": url.netloc.decode("ascii")}
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    for index, address in enumerate(target.addresses):
        try:
            return await client.post(
                url.copy_with(host=address), content=content, headers=headers, extensions=extensions
            )
        except httpx.ConnectError:
            if index == len(target.addresses) - 1:
                raise
    raise AssertionError("a target has at least one address")


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

"""Webhook delivery (pgqueue/execution/webhooks.py ``deliver``) against a
real local HTTP server (tests/support/webhooks.py) that answers from a script: a 4xx is not asked
again, a 429, a 5xx and a dropped connection are, and the attempts run out."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pgqueue.execution.webhooks import WebhookConfig, deliver
from tests.support.webhooks import Receiver, Step

BODY = {"run_id": "r-1", "status": "success", "values": {"n": 1}}
FAST = WebhookConfig(attempts=3, backoff=0.01, timeout=10)


@pytest.fixture
def receiver_for() -> Iterator[Any]:
    made: list[Receiver] = []

    def make(*script: Step) -> Receiver:
        made.append(Receiver(list(script)))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_4xx_is_not_tried_again(receiver_for: Any, status: int) -> None:
    receiver = receiver_for(status)
    assert await deliver(receiver.url, BODY, FAST) is False
    assert receiver.requests == [BODY]


async def test_a_429_is_tried_again(receiver_for: Any) -> None:
    receiver = receiver_for(429, 429)
    assert await deliver(receiver.url, BODY, FAST) is True
    assert receiver.requests == [BODY] * 3


async def test_a_5xx_is_tried_again(receiver_for: Any) -> None:
    receiver = receiver_for(500, 503)
    assert await deliver(receiver.url, BODY, FAST) is True
    assert receiver.requests == [BODY] * 3


async def test_a_dropped_connection_is_tried_again(receiver_for: Any) -> None:
    receiver = receiver_for("drop", "drop")
    assert await deliver(receiver.url, BODY, FAST) is True
    assert receiver.requests == [BODY] * 3


async def test_retries_run_out_and_the_failure_is_logged(
    receiver_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = receiver_for(503, 429, 502, 200)
    with caplog.at_level(logging.WARNING, logger="pgqueue.execution.webhooks"):
        assert await deliver(receiver.url, BODY, FAST) is False
    assert receiver.requests == [BODY] * 3  # attempts=3: the 200 is never asked for
    [record] = caplog.records
    assert "r-1" in record.getMessage() and "after 3 attempt(s): HTTP 502" in record.getMessage()


async def test_a_refused_connection_is_tried_until_the_attempts_run_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
        with caplog.at_level(logging.WARNING, logger="pgqueue.execution.webhooks"):
            assert await deliver(url, BODY, FAST) is False
    [record] = caplog.records
    assert "after 3 attempt(s): ConnectError" in record.getMessage()


async def test_one_attempt_means_no_retry(receiver_for: Any) -> None:
    receiver = receiver_for(503)
    assert await deliver(receiver.url, BODY, WebhookConfig(attempts=1, backoff=0.01)) is False
    assert receiver.requests == [BODY]

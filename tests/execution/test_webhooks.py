"""Webhook delivery (pgqueue/execution/webhooks.py ``deliver``) against a
real local HTTP server (tests/support/webhooks.py) that answers from a script: a 4xx is not asked
again, a 429, a 5xx and a dropped connection are, and the attempts run out.
Then what a delivery carries (signature, configured headers, allowed
fields) and the policy checked again at delivery."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pgqueue.execution.webhook_policy import WebhookPolicy
from pgqueue.execution.webhooks import SIGNATURE_HEADER, WebhookConfig, deliver
from tests.support.webhooks import LOOPBACK_ALLOWED, Receiver, Step, verify

BODY = {"run_id": "r-1", "status": "success", "values": {"n": 1}}
# The receivers listen on 127.0.0.1: allowed here, refused by default.
LOOPBACK = WebhookPolicy.from_section(LOOPBACK_ALLOWED)
FAST = WebhookConfig(attempts=3, backoff=0.01, timeout=10, policy=LOOPBACK)


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
    one = WebhookConfig(attempts=1, backoff=0.01, policy=LOOPBACK)
    assert await deliver(receiver.url, BODY, one) is False
    assert receiver.requests == [BODY]


# -- what a delivery carries ----------------------------------------------------


async def test_a_delivery_is_signed_over_its_exact_bytes(receiver_for: Any) -> None:
    receiver = receiver_for(503)  # a retry is signed afresh, as verifiable
    config = WebhookConfig(attempts=2, backoff=0.01, policy=LOOPBACK, secret="s3cret")
    assert await deliver(receiver.url, BODY, config) is True
    assert len(receiver.raw) == 2
    for raw, headers in zip(receiver.raw, receiver.headers, strict=True):
        assert verify("s3cret", headers[SIGNATURE_HEADER.lower()], raw)
        assert not verify("other", headers[SIGNATURE_HEADER.lower()], raw)
        assert not verify("s3cret", headers[SIGNATURE_HEADER.lower()], raw + b" ")


async def test_without_a_secret_there_is_no_signature(receiver_for: Any) -> None:
    receiver = receiver_for()
    assert await deliver(receiver.url, BODY, FAST) is True
    assert SIGNATURE_HEADER.lower() not in receiver.headers[0]


async def test_configured_headers_and_allowed_fields(receiver_for: Any) -> None:
    receiver = receiver_for()
    policy = WebhookPolicy.from_section(
        {**LOOPBACK_ALLOWED, "allowed_fields": ["run_id", "status"]}
    )
    config = WebhookConfig(policy=policy, headers={"X-Token": "Bearer t0k"})
    assert await deliver(receiver.url, BODY, config) is True
    assert receiver.requests == [{"run_id": "r-1", "status": "success"}]
    assert receiver.headers[0]["x-token"] == "Bearer t0k"


async def test_a_name_is_sent_to_the_address_it_was_checked_at(receiver_for: Any) -> None:
    """localhost, allowed: the request goes to the address the check
    resolved, and still names the host it was meant for."""
    receiver = receiver_for()
    url = receiver.url.replace("127.0.0.1", "localhost")
    assert await deliver(url, BODY, FAST) is True
    assert receiver.headers[0]["host"] == url.split("/")[2]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_delivery_checks_the_policy_again(
    receiver_for: Any, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    """What submit allowed may be refused by now (the policy or DNS
    changed): logged, and nothing is sent."""
    receiver = receiver_for()
    url = receiver.url.replace("127.0.0.1", host)
    with caplog.at_level(logging.WARNING, logger="pgqueue.execution.webhooks"):
        assert await deliver(url, BODY, WebhookConfig(attempts=1)) is False
    assert receiver.requests == []
    [record] = caplog.records
    assert "not sent" in record.getMessage() and "loopback" in record.getMessage()
    assert record.__dict__["event"] == "webhook_refused"

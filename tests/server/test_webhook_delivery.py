"""Webhooks a langgraph.json allows, delivered by ``pgqueue serve`` to a
real local receiver: signed (PGQUEUE_WEBHOOK_SECRET) so the receiver can
verify them, with the section's headers (templates filled from the
server's environment) and only its allowed fields; what the section's
allowed_domains leaves out is still refused at submit."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from pgqueue.execution.webhooks import SIGNATURE_HEADER
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, graphs_config, verify

SECRET = "whsec-test"
FIELDS = ["run_id", "thread_id", "status", "values"]
SECTION = {
    "url": {
        "disable_loopback": False,
        "allowed_domains": ["127.0.0.1", "localhost", "*.example.test"],
    },
    "headers": {"Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}", "X-Static": "yes"},
    "allowed_fields": FIELDS,
}


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Overrides tests/server/conftest.py's: loopback allowed, headers,
    allowed fields, a secret."""
    config = graphs_config(tmp_path_factory.mktemp("webhooks"), SECTION)
    env = {"LG_WEBHOOK_TOKEN": "t0k", "PGQUEUE_WEBHOOK_SECRET": SECRET}
    with server_process(module_database_url, config=config, env=env) as proc:
        yield proc


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_an_allowed_delivery_is_signed_and_carries_the_headers(
    client: LangGraphClient, receiver: Receiver, host: str
) -> None:
    url = receiver.url.replace("127.0.0.1", host)
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "echo", input={"count": 1}, webhook=url)
    await client.runs.join(thread_id, run["run_id"])

    async def delivered() -> bool:
        return bool(receiver.bodies)

    await eventually(delivered, timeout=30, what="webhook")
    [raw], [headers], [body] = receiver.raw, receiver.headers, receiver.bodies
    assert verify(SECRET, headers[SIGNATURE_HEADER.lower()], raw)
    assert not verify("another secret", headers[SIGNATURE_HEADER.lower()], raw)
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-static"] == "yes"
    assert headers["host"] == url.split("/")[2]
    assert body == {
        "run_id": run["run_id"],
        "thread_id": thread_id,
        "status": "success",
        "values": {"count": 2},
    }


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.other.test/", "not in webhooks.url.allowed_domains"),
        ("http://example.test/", "not in webhooks.url.allowed_domains"),  # not the apex
        ("http://a.example.test/", "does not resolve"),  # listed; no DNS answers here
        ("http://10.0.0.1/", "allowed_domains"),
        ("http://user:pw@localhost:9/", "credentials"),
    ],
)
async def test_what_the_section_leaves_out_is_refused(
    server: ServerProcess, url: str, problem: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answer = await http.post("/runs", json={"assistant_id": "echo", "webhook": url})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("webhook: ")
    assert problem in answer.json()["detail"]

"""Webhooks received by a real local HTTP server, and LangGraph's own
RemoteGraph pointed at pgqueue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk.client import LangGraphClient

from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually
from tests.support.webhooks import LOOPBACK_ALLOWED, Receiver, graphs_config


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Overrides tests/server/conftest.py's: the receiver listens on
    127.0.0.1, which the default webhooks policy refuses."""
    config = graphs_config(tmp_path_factory.mktemp("clients"), LOOPBACK_ALLOWED)
    with server_process(module_database_url, config=config) as proc:
        yield proc


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


async def test_webhook_is_posted_on_completion_and_retried(
    client: LangGraphClient, receiver: Receiver
) -> None:
    receiver.refuse_first = 1  # the first delivery gets a 503: retried
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(
        thread_id, "echo", input={"count": 1}, webhook=receiver.url, metadata={"k": "v"}
    )
    await client.runs.join(thread_id, run["run_id"])

    async def delivered() -> bool:
        return bool(receiver.bodies)

    await eventually(delivered, timeout=30, what="webhook")
    body = receiver.bodies[0]
    assert body["run_id"] == run["run_id"]
    assert body["thread_id"] == thread_id
    assert body["status"] == "success"
    assert body["values"] == {"count": 2}
    assert body["metadata"] == {"k": "v"}
    for key in ("run_started_at", "run_ended_at", "webhook_sent_at"):
        assert body[key]
    assert receiver.refused == 1  # the 503 was retried once, then accepted
    # A later run's webhook, once received, marks the first run's deliveries
    # as over: it was accepted exactly once, not again after.
    later = await client.runs.create(thread_id, "echo", input={"count": 5}, webhook=receiver.url)
    await client.runs.join(thread_id, later["run_id"])

    async def later_delivered() -> bool:
        return any(b["run_id"] == later["run_id"] for b in receiver.bodies)

    await eventually(later_delivered, timeout=30, what="the later run's webhook")
    assert [b["run_id"] for b in receiver.bodies] == [run["run_id"], later["run_id"]]


async def test_webhook_reports_errors(client: LangGraphClient, receiver: Receiver) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "fails", input={}, webhook=receiver.url, raise_error=False)

    async def delivered() -> bool:
        return bool(receiver.bodies)

    await eventually(delivered, timeout=30, what="webhook")
    assert receiver.bodies[0]["status"] == "error"
    assert receiver.bodies[0]["error"]["error"] == "ValueError"


async def test_remote_graph_invoke_and_stream(server: ServerProcess) -> None:
    remote = RemoteGraph("three_steps", url=server.url)
    assert await remote.ainvoke({"log": ["hi"]}) == {"log": ["hi", "one", "two", "three"]}
    chunks = [c async for c in remote.astream({"log": []}, stream_mode="updates")]
    assert chunks == [
        {"one": {"log": ["one"]}},
        {"two": {"log": ["two"]}},
        {"three": {"log": ["three"]}},
    ]
    # On a thread, through the sync client too.
    config = {"configurable": {"thread_id": remote.sync_client.threads.create()["thread_id"]}}
    assert remote.invoke({"log": []}, config) == {"log": ["one", "two", "three"]}
    state = remote.get_state(config)
    assert state.values == {"log": ["one", "two", "three"]}
    assert state.next == ()

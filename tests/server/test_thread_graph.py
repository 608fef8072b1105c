"""A thread's metadata names its graph, as on ``langgraph dev``: every run
records its graph_id and assistant_id there, so clients can list a graph's
threads, and a copy (which has no runs) reads its state with that graph."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.server.test_threads import NODE_RUNS


@pytest.fixture(autouse=True)
async def node_runs(db: asyncpg.Pool) -> None:
    await db.execute(NODE_RUNS)  # the test graphs record their nodes there


async def test_a_run_names_its_graph_and_assistant_in_its_threads_metadata(
    client: LangGraphClient,
) -> None:
    mark = {"test": uuid.uuid4().hex}
    thread = await client.threads.create(metadata=mark)
    tid = thread["thread_id"]
    system = (await client.assistants.search(graph_id="three_steps"))[0]["assistant_id"]
    await client.runs.wait(tid, "three_steps", input={})
    assert (await client.threads.get(tid))["metadata"] == {
        **mark,
        "graph_id": "three_steps",
        "assistant_id": system,
    }
    # The newest run's assistant replaces the older one's, and a graph_id
    # patched in by hand is set right by the next run (as on langgraph dev).
    mine = await client.assistants.create("echo")
    await client.threads.update(tid, metadata={"graph_id": "nonsense"})
    run = await client.runs.create(tid, mine["assistant_id"], input={"count": 1})
    metadata = (await client.threads.get(tid))["metadata"]  # as soon as the run is accepted
    assert metadata == {**mark, "graph_id": "echo", "assistant_id": mine["assistant_id"]}
    await client.runs.join(tid, run["run_id"])
    # Threads made by a run (if_not_exists, stateless and kept) have them too.
    made = str(uuid.uuid4())
    await client.runs.wait(made, "echo", input={"count": 1}, if_not_exists="create")
    await client.runs.wait(None, "echo", input={"count": 1}, on_completion="keep")
    listed = await client.threads.search(metadata={"graph_id": "echo"}, limit=100)
    echo_threads = {t["thread_id"] for t in listed}
    assert {tid, made} <= echo_threads
    assert len(echo_threads) >= 3  # and the stateless run's
    by_assistant = await client.threads.search(metadata={"assistant_id": mine["assistant_id"]})
    assert [t["thread_id"] for t in by_assistant] == [tid]


async def test_a_copy_of_a_run_thread_has_its_state_and_history(client: LangGraphClient) -> None:
    tid = (await client.threads.create())["thread_id"]
    await client.runs.wait(tid, "three_steps", input={"log": ["start"]})
    original = await client.threads.get_state(tid)
    assert original["values"]["log"][0] == "start"
    copied = await client.threads.copy(tid)
    cid = copied["thread_id"]
    assert copied["metadata"]["graph_id"] == "three_steps"
    assert (await client.threads.get_state(cid))["values"] == original["values"]
    history = await client.threads.get_history(cid)
    assert [s["values"] for s in history] == [
        s["values"] for s in await client.threads.get_history(tid)
    ]
    assert len(history) > 1
    # The copy runs on from there with its graph.
    await client.runs.wait(cid, "three_steps", input={"log": ["again"]})
    assert (await client.threads.get_state(cid))["values"]["log"][-4:] == [
        "again",
        "one",
        "two",
        "three",
    ]

"""Run options through the HTTP API with langgraph-sdk, executed by
``pgqueue serve``'s workers: ``interrupt_after``, ``stream_subgraphs``, and
``command`` with ``update`` and ``goto``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process

GRAPHS = REPO / "tests" / "graphs"


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Overrides tests/server/conftest.py's: the usual graphs plus one with
    a subgraph."""
    config = tmp_path_factory.mktemp("options") / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {
                    "three_steps": f"{GRAPHS / 'graphs.py'}:three_steps",
                    "nested": f"{GRAPHS / 'subgraphs.py'}:nested",
                }
            }
        )
    )
    with server_process(module_database_url, config=Path(config)) as proc:
        yield proc


async def executions(db: asyncpg.Pool, thread_id: str) -> list[str]:
    """Node executions (tests/graphs/graphs.py records them) of the thread's runs."""
    rows = await db.fetch(
        "SELECT n.node FROM node_runs n JOIN runs r ON r.run_id::text = n.run_id"
        " WHERE r.thread_id = $1::uuid ORDER BY n.at",
        thread_id,
    )
    return [r["node"] for r in rows]


async def test_interrupt_after_stops_after_the_node_and_resumes(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    result = await client.runs.wait(
        thread_id, "three_steps", input={"log": []}, interrupt_after=["one"]
    )
    assert result == {"log": ["one"]}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["two"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    assert await executions(db, thread_id) == ["one"]
    # Continuing (no input) runs the rest, and node one does not run again.
    result = await client.runs.wait(thread_id, "three_steps", input=None)
    assert result == {"log": ["one", "two", "three"]}
    assert await executions(db, thread_id) == ["one", "two", "three"]
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_after_each_node_in_turn(client: LangGraphClient) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    every = ["one", "two", "three"]
    await client.runs.wait(thread_id, "three_steps", input={"log": []}, interrupt_after=every)
    assert (await client.threads.get_state(thread_id))["next"] == ["two"]
    await client.runs.wait(thread_id, "three_steps", input=None, interrupt_after=every)
    assert (await client.threads.get_state(thread_id))["next"] == ["three"]


async def test_command_update_writes_state_without_running_nodes(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "three_steps", input={"log": []})
    result = await client.runs.wait(
        thread_id, "three_steps", command={"update": {"log": ["patched"]}}
    )
    assert result == {"log": ["one", "two", "three", "patched"]}
    assert await executions(db, thread_id) == ["one", "two", "three"]


async def test_command_goto_runs_the_named_node(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread_id, "three_steps", input={"log": []})
    result = await client.runs.wait(thread_id, "three_steps", command={"goto": "two"})
    # two, then its edge to three.
    assert result == {"log": ["one", "two", "three", "two", "three"]}
    assert await executions(db, thread_id) == ["one", "two", "three", "two", "three"]
    result = await client.runs.wait(
        thread_id, "three_steps", command={"update": {"log": ["u"]}, "goto": "three"}
    )
    assert result["log"][-2:] == ["u", "three"]
    assert (await executions(db, thread_id))[-1] == "three"


async def stream(client: LangGraphClient, **kwargs: Any) -> list[tuple[str, Any]]:
    thread_id = (await client.threads.create())["thread_id"]
    return [
        (part.event, part.data)
        async for part in client.runs.stream(
            thread_id, "nested", input={"log": []}, stream_mode="updates", **kwargs
        )
    ]


async def test_stream_subgraphs_streams_the_subgraphs_steps_under_its_namespace(
    client: LangGraphClient,
) -> None:
    parts = [(e, d) for e, d in await stream(client, stream_subgraphs=True) if e != "metadata"]
    names = [e.split(":")[0] for e, _ in parts]
    assert names == ["updates", "updates|inner", "updates|inner", "updates", "updates"], parts
    inner = [d for e, d in parts if e.startswith("updates|inner:")]
    assert inner == [{"inner_a": {"log": ["inner_a"]}}, {"inner_b": {"log": ["inner_b"]}}]
    assert parts[-1] == ("updates", {"after": {"log": ["after"]}})


async def test_without_stream_subgraphs_only_the_parents_steps_stream(
    client: LangGraphClient,
) -> None:
    parts = [(e, d) for e, d in await stream(client) if e != "metadata"]
    assert [e for e, _ in parts] == ["updates"] * 3
    assert [next(iter(d)) for _, d in parts] == ["before", "inner", "after"]

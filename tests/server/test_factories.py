"""Graph factories, built per run and per read as the platform builds them
(``tests/graphs/factories.py``), behind a server with auth: each run's
graph is made with that run's config and user."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process

CONFIG = REPO / "tests" / "graphs" / "factories.json"


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("factories") / "trace.jsonl"


@pytest.fixture(scope="module")
def factory_server(module_database_url: str, trace_file: Path) -> Iterator[ServerProcess]:
    env = {"PGQ_FACTORY_TRACE": str(trace_file)}
    with server_process(module_database_url, config=CONFIG, env=env) as proc:
        yield proc


def _as(server: ServerProcess, user: str) -> LangGraphClient:
    return get_client(url=server.url, headers={"Authorization": f"Bearer token-{user}"})


@pytest.fixture
async def alice(factory_server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    client = _as(factory_server, "alice")
    yield client
    await client.aclose()


@pytest.fixture
async def admin(factory_server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    client = _as(factory_server, "admin")
    yield client
    await client.aclose()


def traced(trace_file: Path, **match: Any) -> list[dict[str, Any]]:
    if not trace_file.exists():
        return []
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    return [e for e in lines if all(e.get(k) == v for k, v in match.items())]


async def run_to_end(
    client: LangGraphClient, graph: str, **kwargs: Any
) -> tuple[str, dict[str, Any], Any]:
    """(thread id, the run, its output) of a run on a new thread."""
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, graph, input={}, **kwargs)
    out = await client.runs.join(thread_id, run["run_id"])
    return thread_id, run, out


async def test_a_per_run_graph_factory_sees_the_runs_config_and_user(
    alice: LangGraphClient, admin: LangGraphClient
) -> None:
    thread_id, run, out = await run_to_end(
        alice, "from_config", config={"configurable": {"flavor": "mint"}}
    )
    assert out["built"] == {
        "kind": "sync",
        "user_id": "alice",
        "user_identity": "alice",  # the user as an object, as the platform hands it over
        "permissions": [],
        "flavor": "mint",
        "thread_id": thread_id,
        "graph_id": "from_config",
        "run_id": run["run_id"],
    }
    # Another run, another user, another config: built anew, for it.
    thread_id, run, out = await run_to_end(
        admin, "from_config", config={"configurable": {"flavor": "lime"}}
    )
    assert out["built"]["user_id"] == "admin"
    assert out["built"]["permissions"] == ["admin"]
    assert out["built"]["flavor"] == "lime"
    assert out["built"]["run_id"] == run["run_id"]


async def test_an_async_factory_is_awaited_per_run(
    alice: LangGraphClient, trace_file: Path
) -> None:
    _, run, out = await run_to_end(alice, "from_config_async")
    assert out["built"]["kind"] == "async"
    assert out["built"]["user_id"] == "alice"
    assert out["built"]["run_id"] == run["run_id"]
    assert len(traced(trace_file, graph="from_config_async", run_id=run["run_id"])) == 1


async def test_a_context_manager_factory_is_entered_and_left_around_the_run(
    alice: LangGraphClient, trace_file: Path
) -> None:
    _, run, out = await run_to_end(alice, "managed")
    assert out["built"]["entered"] is True
    assert out["built"]["user_id"] == "alice"
    # Left when the graph stopped, before the run's outcome was written
    # (join has returned), and without an error.
    events = traced(trace_file, graph="managed", run_id=run["run_id"])
    assert [(e["event"], e.get("error")) for e in events] == [("enter", None), ("exit", None)]


async def test_a_runtime_factory_gets_the_user_the_access_and_the_context(
    alice: LangGraphClient, admin: LangGraphClient
) -> None:
    _, _, out = await run_to_end(alice, "with_runtime", context={"tone": "dry"})
    assert out["built"] == {
        "kind": "runtime",
        "access": "threads.create_run",
        "user": "alice",
        "user_permissions": [],
        "context": {"tone": "dry"},
    }
    # Runtime first, config second: each told apart by its annotation.
    thread_id, run, out = await run_to_end(
        admin, "with_both", config={"configurable": {"flavor": "salt"}}
    )
    assert out["built"]["kind"] == "both"
    assert out["built"]["access"] == "threads.create_run"
    assert out["built"]["user"] == "admin"
    assert out["built"]["flavor"] == "salt"
    assert out["built"]["thread_id"] == thread_id


async def test_a_factory_that_fails_fails_its_run_only(alice: LangGraphClient) -> None:
    thread_id = (await alice.threads.create())["thread_id"]
    parts = [
        p
        async for p in alice.runs.stream(
            thread_id,
            "from_config",
            input={},
            config={"configurable": {"explode": True}},
            stream_mode="values",
        )
    ]
    assert [p.event for p in parts] == ["metadata", "error"]
    assert parts[-1].data["error"] == "RuntimeError"
    message = parts[-1].data["message"]
    assert "graph 'from_config' could not be built for this run" in message
    assert "explode was set" in message
    [run] = await alice.runs.list(thread_id)
    assert run["status"] == "error"
    assert (await alice.threads.get(thread_id))["status"] == "error"
    # A factory returning something else than a graph: the same, said so.
    failed = await alice.runs.wait(None, "not_a_graph", input={}, raise_error=False)
    assert failed["__error__"]["error"] == "TypeError"
    assert "its factory returned a dict, not a LangGraph graph" in failed["__error__"]["message"]
    # The worker goes on: the next run of the same graph succeeds, on the
    # same thread.
    out = await alice.runs.wait(thread_id, "from_config", input={})
    assert out["built"]["user_id"] == "alice"


async def test_state_and_schemas_of_a_factory_graph(
    alice: LangGraphClient, trace_file: Path
) -> None:
    thread_id, _, out = await run_to_end(alice, "with_runtime", context={"tone": "dry"})
    state = await alice.threads.get_state(thread_id)
    assert state["values"] == out
    assert state["next"] == []
    history = await alice.threads.get_history(thread_id)
    assert history[0]["values"] == out
    await alice.threads.update_state(thread_id, {"topic": "tea"}, as_node="made")
    assert (await alice.threads.get_state(thread_id))["values"] == {**out, "topic": "tea"}
    schemas = await alice.assistants.get_schemas("with_runtime")
    assert set(schemas["state_schema"]["properties"]) == {"topic", "built"}
    drawing = await alice.assistants.get_graph("managed")
    assert {n["id"] for n in drawing["nodes"]} >= {"made"}
    # Each of those built the graph for what it was for.
    accesses = {e["access"] for e in traced(trace_file, graph="with_runtime")}
    assert accesses >= {"threads.create_run", "threads.read", "threads.update", "assistants.read"}
    # A context-manager factory is left after a read too.
    reads = [e for e in traced(trace_file, graph="managed") if e["run_id"] is None]
    assert [e["event"] for e in reads][-2:] == ["enter", "exit"]

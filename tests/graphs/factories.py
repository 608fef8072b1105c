"""Graph factories of every kind the platform calls (``factories.json``).

Each graph has one node, ``made``, that returns what its factory saw when
it built the graph (captured then, not read by the node from its own
config): so a run's output shows that the graph was built for that run,
with its config and user. Each call of a factory (and each enter and exit
of a context-manager factory) is also appended, as one JSON line, to the
file ``PGQ_FACTORY_TRACE`` names, when the server was given one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import ServerRuntime


class Made(TypedDict, total=False):
    topic: str
    built: dict[str, Any]


def trace(**entry: Any) -> None:
    path = os.environ.get("PGQ_FACTORY_TRACE")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(entry, default=str) + "\n")


def _run_id(config: RunnableConfig) -> Any:
    return (config.get("metadata") or {}).get("run_id")


def _graph(built: dict[str, Any]) -> Pregel:
    """One node that answers what the factory saw."""

    def made(state: Made) -> dict[str, Any]:
        return {"built": built}

    builder = StateGraph(Made)
    builder.add_node("made", made)
    builder.add_edge(START, "made")
    builder.add_edge("made", END)
    return builder.compile()


def _seen(config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable") or {}
    user = configurable.get("langgraph_auth_user")
    return {
        "user_id": configurable.get("langgraph_auth_user_id"),
        # The platform hands the user over as an object (BaseUser).
        "user_identity": getattr(user, "identity", None),
        "permissions": configurable.get("langgraph_auth_permissions"),
        "flavor": configurable.get("flavor"),
        "thread_id": configurable.get("thread_id"),
        "graph_id": configurable.get("graph_id"),
        "run_id": _run_id(config),
    }


def from_config(config: RunnableConfig) -> Pregel:
    """Sync, one config parameter."""
    configurable = config.get("configurable") or {}
    if configurable.get("explode"):
        raise RuntimeError("the factory refuses: explode was set")
    trace(graph="from_config", access=configurable.get("__is_for_execution__"))
    return _graph({"kind": "sync", **_seen(config)})


async def from_config_async(config: RunnableConfig) -> StateGraph:
    """Async; returns a StateGraph (compiled by the server). Reads its config
    through get_config(), as the platform allows."""
    trace(graph="from_config_async", run_id=_run_id(config))
    assert get_config() is config
    builder = StateGraph(Made)
    seen = {"kind": "async", **_seen(config)}
    builder.add_node("made", lambda state: {"built": seen})
    builder.add_edge(START, "made")
    builder.add_edge("made", END)
    return builder


@contextlib.asynccontextmanager
async def managed(config: RunnableConfig) -> AsyncIterator[Pregel]:
    """An async context manager: entered before the graph is used, left
    after (with the error, if the use failed)."""
    run_id = _run_id(config)
    trace(graph="managed", event="enter", run_id=run_id)
    try:
        yield _graph({"kind": "managed", "entered": True, **_seen(config)})
    except BaseException as exc:
        trace(graph="managed", event="exit", run_id=run_id, error=type(exc).__name__)
        raise
    trace(graph="managed", event="exit", run_id=run_id, error=None)


def with_runtime(runtime: ServerRuntime) -> Pregel:
    """One ServerRuntime parameter."""
    user = runtime.user
    execution = runtime.execution_runtime
    trace(
        graph="with_runtime",
        access=runtime.access_context,
        user=None if user is None else user.identity,
    )
    return _graph(
        {
            "kind": "runtime",
            "access": runtime.access_context,
            "user": None if user is None else user.identity,
            "user_permissions": None if user is None else list(user.permissions),
            "context": None if execution is None else execution.context,
        }
    )


async def with_both(runtime: ServerRuntime, config: RunnableConfig) -> Pregel:
    """Async, both parameters, the runtime first: told apart by annotation."""
    trace(graph="with_both", access=runtime.access_context)
    return _graph(
        {
            "kind": "both",
            "access": runtime.access_context,
            # Reads get no user yet (see the README's factory notes).
            "user": runtime.ensure_user().identity if runtime.execution_runtime else None,
            **_seen(config),
        }
    )


def not_a_graph(config: RunnableConfig) -> Any:
    """Returns something else for a run (reads get a graph)."""
    if (config.get("configurable") or {}).get("__is_for_execution__"):
        return {"not": "a graph"}
    return _graph({})

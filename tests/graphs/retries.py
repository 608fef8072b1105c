"""Graphs whose first attempt fails in a way the executor retries: an
exception marked ``retriable = True`` (not a RetriableError), and the run's
own database connection cut from under it. Each node records its executions
in ``node_runs`` (tests/graphs/graphs.py ``record``)."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from tests.graphs.graphs import State, record


class UpstreamBusy(Exception):
    """Not a pgqueue class: retried because of the attribute alone."""

    retriable = True


def _attempt(config: RunnableConfig) -> int:
    return int(config.get("metadata", {}).get("run_attempt") or 0)


async def busy_once(state: State, config: RunnableConfig) -> dict[str, Any]:
    await record(config, "busy_once")
    if _attempt(config) == 1:
        raise UpstreamBusy("the upstream is busy, come back later")
    return {"log": ["busy_once"]}


async def cut_once(state: State, config: RunnableConfig) -> dict[str, Any]:
    """On the first attempt: ask (table ``cut_requests``) that the run's next
    write stall inside the database (a trigger the test made sleeps there),
    so the test can terminate that backend in the middle of the run's
    transaction."""
    await record(config, "cut_once")
    if _attempt(config) == 1:
        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            await conn.execute("INSERT INTO cut_requests DEFAULT VALUES")
        finally:
            await conn.close()
    return {"log": ["cut_once"]}


def _named(name: str):  # type: ignore[no-untyped-def]
    async def node(state: State, config: RunnableConfig) -> dict[str, Any]:
        await record(config, name)
        return {"log": [name]}

    return node


def _chain(*nodes: tuple[str, Any]) -> Any:
    graph = StateGraph(State)
    for name, fn in nodes:
        graph.add_node(name, fn)
    names = [n for n, _ in nodes]
    graph.add_edge(START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    return graph.compile()


busy = _chain(("before", _named("before")), ("busy_once", busy_once), ("after", _named("after")))
cut = _chain(("before", _named("before")), ("cut_once", cut_once), ("after", _named("after")))

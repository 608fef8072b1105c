"""Graphs the executor tests run in real worker processes.

Nodes record each execution in the table ``node_runs`` (created by the
tests) so tests can count side effects across crashes.
"""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated, Any, TypedDict

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    sleep_in_two: float
    answer: Any


async def record(config: RunnableConfig, node: str) -> None:
    meta = config.get("metadata", {})
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await conn.execute(
            "INSERT INTO node_runs (run_id, node, attempt) VALUES ($1, $2, $3)",
            meta.get("run_id"),
            node,
            meta.get("run_attempt"),
        )
    finally:
        await conn.close()


def step(name: str):  # type: ignore[no-untyped-def]
    async def node(state: State, config: RunnableConfig) -> dict[str, Any]:
        await record(config, name)
        if name == "two" and config.get("metadata", {}).get("run_attempt") == 1:
            # Long enough for the test to SIGKILL us here, on the first attempt only.
            await asyncio.sleep(float(state.get("sleep_in_two", 0)))
        return {"log": [name]}

    return node


_three = StateGraph(State)
for _name in ("one", "two", "three"):
    _three.add_node(_name, step(_name))
_three.add_edge(START, "one")
_three.add_edge("one", "two")
_three.add_edge("two", "three")
_three.add_edge("three", END)
three_steps = _three.compile()


async def ask(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "what is the answer?"})
    return {"answer": answer, "log": ["asked"]}


_asks = StateGraph(State)
_asks.add_node("ask", ask)
_asks.add_edge(START, "ask")
_asks.add_edge("ask", END)
asks = _asks.compile()


async def explode(state: State) -> dict[str, Any]:
    raise ValueError("the node failed on purpose")


_fails = StateGraph(State)
_fails.add_node("explode", explode)
_fails.add_edge(START, "explode")
_fails.add_edge("explode", END)
fails = _fails.compile()


async def flaky(state: State, config: RunnableConfig) -> dict[str, Any]:
    from pgqueue.executor import RetriableError

    if config.get("metadata", {}).get("run_attempt") == 1:
        raise RetriableError("upstream hiccup, try again")
    return {"log": ["flaky-ok"]}


_flaky = StateGraph(State)
_flaky.add_node("flaky", flaky)
_flaky.add_edge(START, "flaky")
_flaky.add_edge("flaky", END)
flaky_graph = _flaky.compile()


# Functional API: @task results are checkpointed as they finish, so after a
# crash the entrypoint replays them instead of calling them again.
@task
async def doubled(i: int) -> int:
    await record(get_config(), f"task-{i}")
    return 2 * i


@entrypoint()
async def with_tasks(inputs: dict[str, Any]) -> dict[str, Any]:
    first = await doubled(1)
    second = await doubled(2)
    if get_config().get("metadata", {}).get("run_attempt") == 1:
        await asyncio.sleep(float(inputs.get("sleep", 0)))  # SIGKILLed here
    third = await doubled(3)
    return {"sum": first + second + third}

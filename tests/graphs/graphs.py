"""Graphs the executor tests run in real worker processes.

Nodes record each execution in the table ``node_runs`` (created by the
tests) so tests can count side effects across crashes.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import os
import time
import uuid
from typing import Annotated, Any, TypedDict

import asyncpg
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_config
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


class State(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    sleep_in_two: float
    # A file node two waits for on the first attempt (after recording it
    # started), so a test can act on a run certainly inside node two.
    gate_in_two: str
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
            gate = state.get("gate_in_two")
            deadline = time.monotonic() + 300
            while gate and not os.path.exists(gate):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{gate} did not appear within 300 s")
                await asyncio.sleep(0.02)
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
    from pgqueue.errors import RetriableError

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


class Ticks(TypedDict, total=False):
    count: int
    until: int
    delay: float


async def tick(state: Ticks) -> dict[str, Any]:
    """One step per tick, ``delay`` seconds each: a long, steady stream
    without database side effects."""
    await asyncio.sleep(float(state.get("delay", 0)))
    return {"count": state.get("count", 0) + 1}


def _again(state: Ticks) -> str:
    return "tick" if state.get("count", 0) < state.get("until", 1) else END


_ticks = StateGraph(Ticks)
_ticks.add_node("tick", tick)
_ticks.add_edge(START, "tick")
_ticks.add_conditional_edges("tick", _again, ["tick", END])
ticks = _ticks.compile()


def echo(state: Ticks) -> dict[str, Any]:
    return {"count": state.get("count", 0) + 1}


# The benchmark's graph: one node, nothing else.
_echo = StateGraph(Ticks)
_echo.add_node("echo", echo)
_echo.add_edge(START, "echo")
_echo.add_edge("echo", END)
echo_graph = _echo.compile()


# A chat model that streams its reply word by word, with no network: for
# stream mode "messages" (LangChain's own fake model, made per call since it
# hands out its replies from an iterator).
REPLY = "pgqueue streams this reply"


async def chat(state: MessagesState) -> dict[str, Any]:
    model = GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)]))
    return {"messages": [await model.ainvoke(state["messages"])]}


_chat = StateGraph(MessagesState)
_chat.add_node("chat", chat)
_chat.add_edge(START, "chat")
_chat.add_edge("chat", END)
chat_graph = _chat.compile()


# The chaos soak's graph (tests/test_chaos.py): five nodes in a chain, each
# recording its execution and sleeping a little, so a crash usually lands
# inside a node and the soak can tell which nodes ran again.
CHAIN_NODES = ("c1", "c2", "c3", "c4", "c5")

# Errors that mean "the database is restarting or unreachable", not a bug.
_OUTAGE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InterfaceError,
    # Closing a connection the outage broke mid-statement: "cannot switch to
    # state ...; another operation is in progress".
    asyncpg.InternalClientError,
)


class Chain(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    delay: float


async def record_execution(config: RunnableConfig, node: str) -> None:
    """Record one execution in node_runs (with the soak's extra columns).

    The soak restarts PostgreSQL: a node that could not record would fail its
    run, so this retries through an outage. A per-execution id makes the retry
    idempotent (an INSERT whose reply was lost is not counted twice)."""
    meta = config.get("metadata", {})
    exec_id = uuid.uuid4()
    started = time.time()
    delay = 0.05
    deadline = time.monotonic() + 120
    while True:
        try:
            # ssl=False: asyncpg's default (try SSL first) leaves a future
            # nobody awaits ("Future exception was never retrieved") when a
            # lease loss cancels the node mid-handshake; the test clusters
            # have no SSL anyway.
            conn = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=5, ssl=False)
            try:
                await conn.execute(
                    "INSERT INTO node_runs (run_id, node, attempt, exec_id, pid, started_at)"
                    " VALUES ($1, $2, $3, $4, $5, to_timestamp($6)) ON CONFLICT (exec_id) DO NOTHING",
                    meta.get("run_id"),
                    node,
                    meta.get("run_attempt"),
                    exec_id,
                    os.getpid(),
                    started,
                )
            finally:
                await conn.close(timeout=5)
            return
        except _OUTAGE_ERRORS:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def chain_step(name: str):  # type: ignore[no-untyped-def]
    async def node(state: Chain, config: RunnableConfig) -> dict[str, Any]:
        await record_execution(config, name)
        await asyncio.sleep(float(state.get("delay", 0)))
        return {"log": [name]}

    return node


_chain = StateGraph(Chain)
for _name in CHAIN_NODES:
    _chain.add_node(_name, chain_step(_name))
_chain.add_edge(START, CHAIN_NODES[0])
for _a, _b in itertools.pairwise(CHAIN_NODES):
    _chain.add_edge(_a, _b)
_chain.add_edge(CHAIN_NODES[-1], END)
chaos_chain = _chain.compile()

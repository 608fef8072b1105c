"""Graphs for the JavaScript client suite (tests/js).

They touch no database, so ``langgraph dev`` runs them exactly as pgqueue
does: the suite is checked against both.
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class Gated(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    # A file the node "wait" waits for: the test holds a run certainly
    # inside that node (to cancel it, to send a second run, to join its
    # stream midway) until it creates the file. No gate: no wait.
    gate: str


async def first(state: Gated) -> dict[str, Any]:
    get_stream_writer()({"reached": "first"})
    return {"log": ["first"]}


async def wait(state: Gated) -> dict[str, Any]:
    # The same wait as graphs.py's node "two", written again on purpose:
    # this file imports nothing of pgqueue's tests, so that langgraph dev
    # (run from a copy of this folder) loads it as it is.
    gate = state.get("gate")
    deadline = time.monotonic() + 300
    while gate and not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} did not appear within 300 s")
        await asyncio.sleep(0.02)
    get_stream_writer()({"reached": "wait"})
    return {"log": ["wait"]}


async def last(state: Gated) -> dict[str, Any]:
    return {"log": ["last"]}


_gated = StateGraph(Gated)
_gated.add_node("first", first)
_gated.add_node("wait", wait)
_gated.add_node("last", last)
_gated.add_edge(START, "first")
_gated.add_edge("first", "wait")
_gated.add_edge("wait", "last")
_gated.add_edge("last", END)
gated = _gated.compile()

"""A graph with a subgraph as one of its nodes, for ``stream_subgraphs``:
before -> inner (inner_a -> inner_b) -> after."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph


class Log(TypedDict, total=False):
    log: Annotated[list[str], operator.add]


def _step(name: str):  # type: ignore[no-untyped-def]
    def node(state: Log) -> dict[str, Any]:
        return {"log": [name]}

    return node


_inner = StateGraph(Log)
_inner.add_node("inner_a", _step("inner_a"))
_inner.add_node("inner_b", _step("inner_b"))
_inner.add_edge(START, "inner_a")
_inner.add_edge("inner_a", "inner_b")
_inner.add_edge("inner_b", END)

_outer = StateGraph(Log)
_outer.add_node("before", _step("before"))
_outer.add_node("inner", _inner.compile())
_outer.add_node("after", _step("after"))
_outer.add_edge(START, "before")
_outer.add_edge("before", "inner")
_outer.add_edge("inner", "after")
_outer.add_edge("after", END)
nested = _outer.compile()

"""The benchmark's graph: one node that adds one. Every peer serves this file,
so the figures measure the servers, not the work."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    n: int


def add_one(state: State) -> dict[str, int]:
    return {"n": state["n"] + 1}


graph = (
    StateGraph(State)
    .add_node("add_one", add_one)
    .add_edge(START, "add_one")
    .add_edge("add_one", END)
    .compile()
)

"""A two-node graph to try pgqueue with: ``pgqueue serve --config examples/hello/langgraph.json``."""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    name: str
    greeting: str
    shout: str


def greet(state: State) -> State:
    return {"greeting": f"Hello, {state.get('name', 'world')}!"}


def shout(state: State) -> State:
    return {"shout": state["greeting"].upper()}


builder = StateGraph(State)
builder.add_node("greet", greet)
builder.add_node("shout", shout)
builder.add_edge(START, "greet")
builder.add_edge("greet", "shout")
builder.add_edge("shout", END)
graph = builder.compile()

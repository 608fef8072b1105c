"""A graph that says who started its run (the user auth put in its config)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph


class Who(TypedDict, total=False):
    user: Any
    permissions: list[str]


def whoami(state: Who, config: RunnableConfig) -> dict[str, Any]:
    configurable = config["configurable"]
    return {
        "user": configurable.get("langgraph_auth_user_id"),
        "permissions": configurable.get("langgraph_auth_permissions"),
    }


_who = StateGraph(Who)
_who.add_node("whoami", whoami)
_who.add_edge(START, "whoami")
_who.add_edge("whoami", END)
whoami_graph = _who.compile()

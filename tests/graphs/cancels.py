"""A graph that absorbs a cancel, as code under a run can without meaning
to: on Python 3.11, ``asyncio.wait_for`` returns the awaited result instead
of raising when a cancel meets that result's arrival (the executor's first
checkpoint read waits for a pool connection that way, in psycopg_pool), and
the run then goes on as if it had never been asked to stop. Here the node
absorbs the first cancel every time, so a test does not depend on hitting
that instant.

Input ``then``: "steps" -- after absorbing, the graph goes on stepping (it
streams a chunk every ``delay`` seconds); "waits" -- the node goes on
waiting, for an hour, without a chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph


class Absorbing(TypedDict, total=False):
    then: str
    delay: float
    count: int
    absorbed: bool


async def _until_cancelled() -> None:
    """Waits on nothing that ever happens: only a cancel ends it."""
    await asyncio.Event().wait()


async def absorb(state: Absorbing) -> dict[str, Any]:
    count = state.get("count", 0) + 1
    if state.get("absorbed"):
        await asyncio.sleep(float(state.get("delay", 0.05)))
        return {"count": count}
    # The worker's log says when the run is inside the window.
    print("absorbing the next cancel", flush=True)
    try:
        await _until_cancelled()
    except asyncio.CancelledError:
        print("absorbed a cancel", flush=True)
    if state.get("then") == "waits":
        await _until_cancelled()
    return {"count": count, "absorbed": True}


def _again(state: Absorbing) -> str:
    return "absorb" if state.get("count", 0) < 100_000 else END


_absorbs = StateGraph(Absorbing)
_absorbs.add_node("absorb", absorb)
_absorbs.add_edge(START, "absorb")
_absorbs.add_conditional_edges("absorb", _again, ["absorb", END])
absorbs_a_cancel = _absorbs.compile()

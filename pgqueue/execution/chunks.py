"""What a graph streams while it runs, as (event name, data) pairs: the
LangGraph stream modes a run asked for, and the platform's ``events`` mode
(LangChain's callback events, ``astream_events`` v2).

With ``events``, the graph runs under ``astream_events``, and the chunks of
the other modes are read from the graph's own ``on_chain_stream`` events:
one run of the graph serves both.

A cancel the graph absorbed is delivered again at its next chunk
(``redeliver_absorbed_cancel``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Literal, cast, get_args

StreamMode = Literal["values", "updates", "checkpoints", "tasks", "debug", "messages", "custom"]
# LangGraph's stream modes, and the platform's own on top of them.
GRAPH_MODES = get_args(StreamMode)
STREAM_MODES = (*GRAPH_MODES, "events")


def event_of(chunk: Any, subgraphs: bool) -> tuple[str, Any]:
    """(event name, data) for one astream chunk. With subgraphs the name
    carries the namespace: ``mode|parent:id|child:id``."""
    if subgraphs:
        namespace, mode, data = chunk
        name = "|".join([mode, *namespace]) if namespace else mode
    else:
        name, data = chunk
    return name, data


def redeliver_absorbed_cancel() -> None:
    """If this task was asked to stop (a user's cancel, a hurried shutdown, a
    lost lease, the run's timeout) and is still streaming, something below
    absorbed the CancelledError: on Python 3.11 ``asyncio.wait_for`` returns
    the awaited result instead of raising when the cancel meets that
    result (psycopg_pool's ``getconn`` waits so, as may a graph's own
    libraries). Cancel it again, still counted once: the error is raised at
    the graph's next await and unwinds it as any cancel does."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
        task.cancel()


async def stream(
    graph: Any,
    graph_input: Any,
    config: Any,
    modes: list[str],
    subgraphs: bool,
    **options: Any,
) -> AsyncIterator[tuple[str, Any]]:
    """Run ``graph`` and yield what the run streams, in order. ``options``
    go to ``astream`` (durability, interrupts, context)."""
    graph_modes = cast(list[StreamMode], [m for m in modes if m != "events"])
    if "events" not in modes:
        async for chunk in graph.astream(
            graph_input, config, stream_mode=graph_modes, subgraphs=subgraphs, **options
        ):
            redeliver_absorbed_cancel()
            yield event_of(chunk, subgraphs)
        return
    root = None
    async for event in graph.astream_events(
        graph_input,
        config,
        version="v2",
        # Some mode must run the graph; its chunks are dropped if unasked.
        stream_mode=graph_modes or ["values"],
        subgraphs=subgraphs,
        **options,
    ):
        redeliver_absorbed_cancel()
        if root is None:
            root = event["run_id"]  # the first event is the graph's own start
        if graph_modes and event["event"] == "on_chain_stream" and event["run_id"] == root:
            yield event_of(event["data"]["chunk"], subgraphs)
        yield "events", event

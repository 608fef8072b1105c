"""A thread's state, read, listed and updated through the thread's graph on
the server's checkpointer (``pgqueue.threads`` has the threads themselves).

A thread's graph is the one its metadata names: ``graph_id``, which every
run on it records (as the platform does) and the SDK's
``threads.create(graph_id=...)`` sets, else its ``assistant_id``'s graph.
So a copy, which has no runs, reads its state with its source's graph. A
thread with neither has an empty state and cannot have its state updated
(409), nor can a thread with a live run.

A graph factory is called for each read (``threads.read``) and update
(``threads.update``), with the thread's state config, as the platform
calls it: the graph's structure decides which tasks a state shows and
which channels an update writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.errors import InvalidUpdateError
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot, StateUpdate

from pgqueue.db.sql import queries
from pgqueue.errors import Conflict, Invalid, NotFound
from pgqueue.execution.factories import AccessContext
from pgqueue.execution.graphs import GraphRegistry
from pgqueue.resources.threads import TTL, delete_many, dumps, get, insert_thread
from pgqueue.resources.visibility import EVERYTHING, Visible
from pgqueue.types import Queryable


async def create_with_state(
    pool: asyncpg.Pool,
    registry: GraphRegistry,
    checkpointer: AsyncPostgresSaver,
    supersteps: Sequence[Sequence[tuple[Any, str | None]]],
    *,
    thread_id: UUID | None = None,
    metadata: dict[str, Any] | None = None,
    if_exists: str = "raise",
    ttl: TTL | None = None,
    visible: Visible,
) -> dict[str, Any]:
    """Create a thread and apply ``supersteps`` of state updates to it, with
    the graph its metadata names (``graph_id``). An update the graph refuses
    leaves no thread behind. An existing thread (``do_nothing``) is left as
    it is, and is answered only if ``visible`` shows it."""
    thread_id = thread_id or uuid4()
    _, created = await insert_thread(pool, thread_id, metadata, if_exists, visible, ttl)
    if created:
        # The request just made this thread: its own updates and cleanup
        # need no further filter.
        try:
            await update_state(
                pool,
                registry,
                checkpointer,
                thread_id,
                None,
                supersteps=supersteps,
                visible=EVERYTHING,
            )
        except Exception:
            async with pool.acquire() as conn, conn.transaction():
                await delete_many(conn, [thread_id], visible=EVERYTHING)
            raise
        return await get(pool, thread_id, visible=EVERYTHING)
    return await get(pool, thread_id, visible=visible)


# -- state -------------------------------------------------------------------


@dataclass
class ThreadGraph:
    graph_id: str | None
    busy: bool


async def graph_of(
    db: Queryable, registry: GraphRegistry, thread_id: UUID, *, visible: Visible
) -> ThreadGraph:
    row = await db.fetchrow(queries.get_thread_graph, thread_id, visible.filter)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    candidates: list[str | None] = list(row["graph_ids"])
    # A graph's system assistant names it without an assistants row.
    with contextlib.suppress(ValueError, TypeError):
        candidates.append(registry.assistant_ids.get(UUID(row["assistant_id"])))
    for graph_id in candidates:
        if graph_id is not None and graph_id in registry.specs:
            registry.get(graph_id)  # one that does not load fails here
            return ThreadGraph(graph_id, row["busy"])
    return ThreadGraph(None, row["busy"])


@asynccontextmanager
async def _graph(
    registry: GraphRegistry,
    graph_id: str,
    checkpointer: AsyncPostgresSaver,
    config: RunnableConfig,
    access: AccessContext,
) -> AsyncIterator[Pregel]:
    """The thread's graph on the server's checkpointer, for one read or
    update; a factory gets the state config (and the graph's id, as a
    run's config names it)."""
    factory_config = {"configurable": {**config["configurable"], "graph_id": graph_id}}
    async with registry.graph(graph_id, factory_config, access) as graph:
        yield _bound(graph, checkpointer)


def state_config(thread_id: UUID, checkpoint: dict[str, Any] | None = None) -> RunnableConfig:
    """The checkpointer config of a thread, at a checkpoint if one is given
    (``checkpoint_id``, and ``checkpoint_ns``/``checkpoint_map`` for subgraphs)."""
    configurable: dict[str, Any] = {"thread_id": str(thread_id), "checkpoint_ns": ""}
    for key in ("checkpoint_ns", "checkpoint_id", "checkpoint_map"):
        if checkpoint and checkpoint.get(key) is not None:
            configurable[key] = checkpoint[key]
    return RunnableConfig(configurable=configurable)


def _checkpoint(config: Any) -> dict[str, Any] | None:
    if not config:
        return None
    c = config.get("configurable", {})
    return {
        "thread_id": c.get("thread_id"),
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": c.get("checkpoint_map"),
    }


def _interrupt(i: Any) -> dict[str, Any]:
    found = {"value": i.value, "id": i.id}
    if getattr(i, "response_schema", None) is not None:
        found["response_schema"] = i.response_schema
    return found


def state_json(snapshot: StateSnapshot) -> dict[str, Any]:
    """A StateSnapshot as the API's ThreadState. A thread with no checkpoint
    yet has none (null), as on the platform."""
    checkpoint = _checkpoint(snapshot.config)
    if checkpoint is not None and checkpoint.get("checkpoint_id") is None:
        checkpoint = None
    parent = _checkpoint(snapshot.parent_config)
    tasks = []
    for t in snapshot.tasks:
        nested = t.state if isinstance(t.state, StateSnapshot) else None
        tasks.append(
            {
                "id": t.id,
                "name": t.name,
                "error": None if t.error is None else f"{type(t.error).__name__}: {t.error}",
                "interrupts": [_interrupt(i) for i in t.interrupts],
                "checkpoint": _checkpoint(t.state) if isinstance(t.state, dict) else None,
                "state": None if nested is None else state_json(nested),
                "result": t.result,
            }
        )
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "tasks": tasks,
        "checkpoint": checkpoint,
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "parent_checkpoint": parent,
        "interrupts": [_interrupt(i) for i in snapshot.interrupts],
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def _bound(graph: Pregel, checkpointer: AsyncPostgresSaver) -> Pregel:
    return graph.copy(update={"checkpointer": checkpointer})


async def get_state(
    db: Queryable,
    registry: GraphRegistry,
    checkpointer: AsyncPostgresSaver,
    thread_id: UUID,
    checkpoint: dict[str, Any] | None = None,
    subgraphs: bool = False,
    *,
    visible: Visible,
) -> dict[str, Any]:
    """The state at the latest checkpoint, or at ``checkpoint`` (404 if the
    thread has no such checkpoint). A thread without a graph or a
    checkpoint has empty values and nothing next."""
    found = await graph_of(db, registry, thread_id, visible=visible)
    config = state_config(thread_id, checkpoint)
    wanted = config["configurable"].get("checkpoint_id")
    if found.graph_id is None:
        if wanted:
            raise NotFound(f"checkpoint {wanted} of thread {thread_id} not found")
        return state_json(StateSnapshot({}, (), config, None, None, None, (), ()))
    async with _graph(registry, found.graph_id, checkpointer, config, "threads.read") as graph:
        snapshot = await graph.aget_state(config, subgraphs=subgraphs)
    if wanted and snapshot.created_at is None:
        raise NotFound(f"checkpoint {wanted} of thread {thread_id} not found")
    return state_json(snapshot)


async def history(
    db: Queryable,
    registry: GraphRegistry,
    checkpointer: AsyncPostgresSaver,
    thread_id: UUID,
    *,
    limit: int = 10,
    before: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    checkpoint: dict[str, Any] | None = None,
    visible: Visible,
) -> list[dict[str, Any]]:
    """States newest first, at most ``limit``, older than ``before``."""
    found = await graph_of(db, registry, thread_id, visible=visible)
    if found.graph_id is None:
        return []
    config = state_config(thread_id, checkpoint)
    before_config = state_config(thread_id, before) if before else None
    async with _graph(registry, found.graph_id, checkpointer, config, "threads.read") as graph:
        return [
            state_json(s)
            async for s in graph.aget_state_history(
                config, filter=metadata or None, before=before_config, limit=limit
            )
        ]


async def update_state(
    pool: asyncpg.Pool,
    registry: GraphRegistry,
    checkpointer: AsyncPostgresSaver,
    thread_id: UUID,
    values: Any,
    *,
    as_node: str | None = None,
    checkpoint: dict[str, Any] | None = None,
    supersteps: Sequence[Sequence[tuple[Any, str | None]]] | None = None,
    visible: Visible,
) -> dict[str, Any]:
    """Write a checkpoint as if ``as_node`` had returned ``values`` (or apply
    ``supersteps`` of such updates), then record the thread's new values,
    interrupts and status. Returns the new checkpoint.

    The thread row stays locked meanwhile, so no run can be submitted on it
    until the thread's record agrees with its checkpoints."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetch(queries.lock_threads, [thread_id], visible.filter):
            raise NotFound(f"thread {thread_id} not found")
        found = await graph_of(conn, registry, thread_id, visible=visible)
        if found.busy:
            raise Conflict(f"thread {thread_id} has a pending or running run; update it later")
        if found.graph_id is None:
            raise Conflict(
                f"thread {thread_id} has no graph yet: run it first, or create it with a graph_id"
            )
        config = state_config(thread_id, checkpoint)
        async with _graph(
            registry, found.graph_id, checkpointer, config, "threads.update"
        ) as graph:
            new_config = await _apply(
                graph, found.graph_id, checkpointer, config, values, as_node, supersteps
            )
            latest = await graph.aget_state(state_config(thread_id))
        interrupts = {
            t.id: [_interrupt(i) for i in t.interrupts] for t in latest.tasks if t.interrupts
        }
        await conn.execute(
            queries.record_thread_state,
            thread_id,
            dumps(latest.values),
            dumps(interrupts),
            "interrupted" if latest.next else "idle",
        )
    # The platform's answer: the checkpoint, and the same as a config
    # (``configurable``) and an id, which the JS SDK reads.
    checkpoint = _checkpoint(new_config)
    return {
        "checkpoint": checkpoint,
        "configurable": checkpoint,
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
    }


async def _apply(
    graph: Pregel,
    graph_id: str,
    checkpointer: AsyncPostgresSaver,
    config: RunnableConfig,
    values: Any,
    as_node: str | None,
    supersteps: Sequence[Sequence[tuple[Any, str | None]]] | None,
) -> RunnableConfig:
    """The update itself; the new checkpoint's config."""
    # Nodes of the root graph; a subgraph's checkpoint (a namespace) has
    # its own, which the graph itself checks.
    nodes = [as_node] + [n for step in supersteps or [] for _, n in step]
    for node in nodes if not config["configurable"]["checkpoint_ns"] else []:
        if node is not None and node not in graph.nodes:
            raise Invalid("as_node", f"graph {graph_id!r} has no node {node!r}")
    wanted = config["configurable"].get("checkpoint_id")
    if wanted and await checkpointer.aget_tuple(config) is None:
        raise NotFound(
            f"checkpoint {wanted} of thread {config['configurable']['thread_id']} not found"
        )
    try:
        if supersteps is not None:
            return await graph.abulk_update_state(
                config, [[StateUpdate(v, n) for v, n in step] for step in supersteps]
            )
        return await graph.aupdate_state(config, values, as_node=as_node)
    except (InvalidUpdateError, TypeError, ValueError) as exc:
        # The graph refused the update (a value its reducer cannot take,
        # an ambiguous node): the client's values, not our bug.
        raise Invalid("values", f"{type(exc).__name__}: {exc}") from None

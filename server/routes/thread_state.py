"""A thread's state: latest, at a checkpoint, its history, and updating it.
Logic: ``pgqueue.thread_state``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.resources import thread_state
from server.api import JSON, Router, invalid, parse_body, parse_query
from server.api import path_uuid as _path_uuid
from server.authorization import authorize
from server.context import ctx
from server.pages import Limit
from server.routes.threads import path_uuid

router = Router("threads")


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: str | None = None
    checkpoint_ns: str = Field(default="", max_length=10_000)
    checkpoint_id: UUID | None = None
    checkpoint_map: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        found = self.model_dump(exclude={"thread_id"})
        if self.checkpoint_id is not None:
            found["checkpoint_id"] = str(self.checkpoint_id)
        return found


class ThreadState(BaseModel):
    values: Any
    next: list[str]
    tasks: list[dict[str, Any]]
    checkpoint: Checkpoint | None
    metadata: dict[str, Any] | None
    created_at: str | None
    parent_checkpoint: Checkpoint | None
    interrupts: list[dict[str, Any]]
    checkpoint_id: str | None
    parent_checkpoint_id: str | None


class StateUpdated(BaseModel):
    checkpoint: Checkpoint
    configurable: Checkpoint
    checkpoint_id: str | None


class CheckpointConfig(BaseModel):
    """A checkpoint given as a config, ``{"configurable": {...}}``: the
    shape of ``before`` in the JS SDK's types."""

    model_config = ConfigDict(extra="ignore")
    configurable: Checkpoint


class StateQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    subgraphs: bool = False
    select: list[str] | str | None = None


class StateAtBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    checkpoint: Checkpoint
    subgraphs: bool = False
    select: list[str] | None = None


class StateUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = Field(default=None, min_length=1, max_length=1000)
    checkpoint: Checkpoint | None = None
    checkpoint_id: UUID | None = None


class HistoryBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: Limit = 10
    before: UUID | CheckpointConfig | Checkpoint | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: Checkpoint | None = None
    select: list[str] | None = None


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: Limit = 10
    before: UUID | None = None


def project_state(state: dict[str, Any], select: list[str] | str | None) -> dict[str, Any]:
    """``select``: fields of a ThreadState, or ``values.<key>`` for one key
    of the values."""
    if not select:
        return state
    fields = [select] if isinstance(select, str) else select
    picked: dict[str, Any] = {}
    keys = [f.removeprefix("values.") for f in fields if f.startswith("values.")]
    if keys:
        values = state["values"] if isinstance(state["values"], dict) else {}
        picked["values"] = {k: values[k] for k in keys if k in values}
    for f in fields:
        if not f.startswith("values."):
            if f not in state:
                raise invalid("select", f"{f!r} is not a field of a thread state")
            picked[f] = state[f]
    return picked


# -- threads -------------------------------------------------------------------


async def _state(request: Request, checkpoint: Checkpoint | None, subgraphs: bool) -> Any:
    context = ctx(request)
    thread_id = path_uuid(request)
    visible = await authorize(request, "threads", "read", {"thread_id": thread_id})
    return await thread_state.get_state(
        context.pool,
        context.registry,
        context.checkpointer,
        thread_id,
        checkpoint.as_dict() if checkpoint else None,
        subgraphs,
        visible=visible,
    )


@router.route(
    "GET",
    "/threads/{thread_id}/state",
    summary="The thread's latest state",
    query=StateQuery,
    responses={200: "The state", 404: "Unknown thread"},
    returns=ThreadState,
)
async def get_state(request: Request) -> Response:
    query = parse_query(request, StateQuery)
    return JSON(project_state(await _state(request, None, query.subgraphs), query.select))


@router.route(
    "GET",
    "/threads/{thread_id}/state/{checkpoint_id}",
    summary="The thread's state at a checkpoint",
    query=StateQuery,
    responses={200: "The state", 404: "Unknown thread or checkpoint"},
    returns=ThreadState,
)
async def get_state_at(request: Request) -> Response:
    checkpoint = Checkpoint(checkpoint_id=_path_uuid(request, "checkpoint_id"))
    query = parse_query(request, StateQuery)
    return JSON(project_state(await _state(request, checkpoint, query.subgraphs), query.select))


@router.route(
    "POST",
    "/threads/{thread_id}/state/checkpoint",
    summary="The thread's state at a checkpoint (of a subgraph too)",
    body=StateAtBody,
    responses={200: "The state", 404: "Unknown thread or checkpoint"},
    returns=ThreadState,
)
async def post_state_at(request: Request) -> Response:
    body = await parse_body(request, StateAtBody)
    return JSON(project_state(await _state(request, body.checkpoint, body.subgraphs), body.select))


@router.route(
    "POST",
    "/threads/{thread_id}/state",
    summary="Update the thread's state as if a node had run",
    body=StateUpdate,
    responses={
        200: "The new checkpoint",
        404: "Unknown thread or checkpoint",
        409: "A run is pending or running, or the thread has no graph yet",
    },
    returns=StateUpdated,
)
async def update_state(request: Request) -> Response:
    thread_id = path_uuid(request)
    body = await parse_body(request, StateUpdate)
    checkpoint = body.checkpoint or (
        Checkpoint(checkpoint_id=body.checkpoint_id) if body.checkpoint_id else None
    )
    context = ctx(request)
    visible = await authorize(
        request, "threads", "update", {"thread_id": thread_id, "metadata": {}}
    )
    updated = await thread_state.update_state(
        context.pool,
        context.registry,
        context.checkpointer,
        thread_id,
        body.values,
        as_node=body.as_node,
        checkpoint=checkpoint.as_dict() if checkpoint else None,
        visible=visible,
    )
    return JSON(updated)


async def _history(
    request: Request, limit: int, before: UUID | CheckpointConfig | Checkpoint | None, **kw: Any
) -> list[dict[str, Any]]:
    context = ctx(request)
    thread_id = path_uuid(request)
    visible = await authorize(request, "threads", "read", {"thread_id": thread_id})
    if isinstance(before, UUID):
        before = Checkpoint(checkpoint_id=before)
    elif isinstance(before, CheckpointConfig):
        before = before.configurable
    return await thread_state.history(
        context.pool,
        context.registry,
        context.checkpointer,
        thread_id,
        limit=limit,
        before=before.as_dict() if before else None,
        visible=visible,
        **kw,
    )


@router.route(
    "POST",
    "/threads/{thread_id}/history",
    summary="The thread's past states, newest first",
    body=HistoryBody,
    responses={200: "States, newest first", 404: "Unknown thread"},
)
async def post_history(request: Request) -> Response:
    body = await parse_body(request, HistoryBody)
    states = await _history(
        request,
        body.limit,
        body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint.as_dict() if body.checkpoint else None,
    )
    return JSON([project_state(s, body.select) for s in states])


@router.route(
    "GET",
    "/threads/{thread_id}/history",
    summary="The thread's past states, newest first",
    query=HistoryQuery,
    responses={200: "States, newest first", 404: "Unknown thread"},
)
async def get_history(request: Request) -> Response:
    query = parse_query(request, HistoryQuery)
    return JSON(await _history(request, query.limit, query.before))

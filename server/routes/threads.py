"""Threads: create, read, update, delete, search, count, copy and prune
them (their state: ``server.routes.thread_state``). Logic and SQL:
``pgqueue.threads``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.errors import Invalid
from pgqueue.execution.graphs import MAX_TTL_MINUTES
from pgqueue.resources import thread_state, threads
from server.api import JSON, Router, no_content, parse_body
from server.api import path_uuid as _path_uuid
from server.authorization import authorize
from server.context import ctx
from server.pages import Limit, Offset, page, search_of

router = Router("threads")

Status = Literal["idle", "busy", "interrupted", "error"]
SelectField = Literal[
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "context",
    "status",
    "values",
    "interrupts",
    "error",
]


# -- models --------------------------------------------------------------------


class Thread(BaseModel):
    thread_id: UUID
    created_at: datetime
    updated_at: datetime
    state_updated_at: datetime | None
    metadata: dict[str, Any]
    status: Status
    config: dict[str, Any]
    values: Any
    interrupts: dict[str, Any]
    error: Any


class SuperstepUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    values: Any = None
    command: dict[str, Any] | None = None
    as_node: str = Field(min_length=1, max_length=1000)

    @field_validator("command")
    @classmethod
    def _no_command(cls, value: dict[str, Any] | None) -> None:
        if value is not None:
            raise ValueError("commands in supersteps are not supported; use values")
        return None


class Superstep(BaseModel):
    model_config = ConfigDict(extra="ignore")
    updates: list[SuperstepUpdate] = Field(min_length=1)


class ThreadTTL(BaseModel):
    """A thread's TTL as the SDK sends it (a bare number becomes
    ``{"ttl": n, "strategy": "delete"}``). Minutes, fractions allowed."""

    model_config = ConfigDict(extra="forbid")
    # At most a century: expires_at must stay a timestamp PostgreSQL keeps.
    ttl: float = Field(gt=0, le=MAX_TTL_MINUTES, allow_inf_nan=False)
    strategy: Literal["delete", "keep_latest"] = "delete"

    def value(self) -> threads.TTL:
        return threads.TTL(minutes=self.ttl, strategy=self.strategy)


def _bare_minutes(value: Any) -> Any:
    # A number alone, as a client other than the SDK may send it.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"ttl": value}
    return value


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: UUID | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Superstep] | None = Field(default=None, max_length=1000)
    ttl: ThreadTTL | None = None

    _ttl = field_validator("ttl", mode="before")(_bare_minutes)


class ThreadPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTL | None = None

    _ttl = field_validator("ttl", mode="before")(_bare_minutes)


class ThreadFilter(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Status | None = None


class ThreadSearchBody(ThreadFilter):
    ids: list[UUID] | None = Field(default=None, max_length=1000)
    limit: Limit = 10
    offset: Offset = 0
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None
    extract: dict[str, str] | None = Field(default=None, max_length=10)

    @field_validator("extract")
    @classmethod
    def _paths_parse(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for alias, path in (value or {}).items():
            try:
                threads.parse_path(path)
            except ValueError as exc:
                raise ValueError(f"{alias}: {exc}") from None
        return value


class PruneBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_ids: list[UUID] = Field(max_length=1000)
    strategy: Literal["delete", "keep_latest"] = "delete"


def path_uuid(request: Request) -> UUID:
    return _path_uuid(request, "thread_id")


@router.route(
    "POST",
    "/threads",
    summary="Create a thread (supersteps: with initial state)",
    body=ThreadCreate,
    responses={200: "The thread", 409: "thread_id taken (if_exists=raise)"},
    returns=Thread,
)
async def create_thread(request: Request) -> Response:
    body = await parse_body(request, ThreadCreate)
    context = ctx(request)
    value: dict[str, Any] = {
        "thread_id": body.thread_id,
        "metadata": dict(body.metadata or {}),
        "if_exists": body.if_exists,
    }
    visible = await authorize(request, "threads", "create", value)
    metadata = value.get("metadata")
    ttl = body.ttl.value() if body.ttl else None
    if body.supersteps:
        steps = [[(u.values, u.as_node) for u in s.updates] for s in body.supersteps]
        thread = await thread_state.create_with_state(
            context.pool,
            context.registry,
            context.checkpointer,
            steps,
            thread_id=body.thread_id,
            metadata=metadata,
            if_exists=body.if_exists,
            ttl=ttl,
            visible=visible,
        )
    else:
        thread = await threads.create(
            context.pool,
            thread_id=body.thread_id,
            metadata=metadata,
            if_exists=body.if_exists,
            ttl=ttl,
            visible=visible,
        )
    return JSON(thread)


@router.route(
    "POST",
    "/threads/search",
    summary="Search threads (X-Pagination-Total, X-Pagination-Next)",
    body=ThreadSearchBody,
    responses={200: "A page of threads"},
)
async def search_threads(request: Request) -> Response:
    body = await parse_body(request, ThreadSearchBody)
    visible = await authorize(request, "threads", "search", _search_value(body))
    found, total = await threads.search(
        ctx(request).pool, search_of(threads.ThreadSearch, body), visible=visible
    )
    if body.extract:
        paths = {alias: threads.parse_path(p) for alias, p in body.extract.items()}
        for thread in found:
            thread["extracted"] = {a: threads.extract(thread, s) for a, s in paths.items()}
    select: list[str] | None = list(body.select) if body.select else None
    if select and body.extract:
        select.append("extracted")
    return page(found, total, body.offset, select)


@router.route(
    "POST", "/threads/count", summary="Count threads matching a filter", body=ThreadFilter
)
async def count_threads(request: Request) -> Response:
    body = await parse_body(request, ThreadFilter)
    visible = await authorize(request, "threads", "search", _search_value(body))
    query = search_of(threads.ThreadSearch, body)
    return JSON(await threads.count(ctx(request).pool, query, visible=visible))


def _search_value(body: ThreadFilter) -> dict[str, Any]:
    value: dict[str, Any] = {
        "metadata": body.metadata,
        "values": body.values,
        "status": body.status,
    }
    if isinstance(body, ThreadSearchBody):
        value.update(ids=body.ids, limit=body.limit, offset=body.offset)
    return value


@router.route(
    "POST",
    "/threads/prune",
    summary="Delete threads, or keep only their latest checkpoints",
    body=PruneBody,
    responses={200: "{pruned_count}: how many of the threads existed"},
)
async def prune_threads(request: Request) -> Response:
    body = await parse_body(request, PruneBody)
    context = ctx(request)
    # Only threads the request may delete are pruned; others count as missing.
    visible = await authorize(
        request, "threads", "delete", {"thread_id": None, "thread_ids": body.thread_ids}
    )
    n = await threads.prune(
        context.pool, context.checkpointer, body.thread_ids, body.strategy, visible=visible
    )
    return JSON({"pruned_count": n})


@router.route(
    "GET",
    "/threads/{thread_id}",
    summary="Get a thread (?include=ttl: with its TTL)",
    responses={200: "The thread", 404: "Unknown thread"},
    returns=Thread,
)
async def get_thread(request: Request) -> Response:
    thread_id = path_uuid(request)
    include = {f.strip() for f in request.query_params.get("include", "").split(",")}
    visible = await authorize(request, "threads", "read", {"thread_id": thread_id})
    return JSON(
        await threads.get(
            ctx(request).pool, thread_id, visible=visible, include_ttl="ttl" in include
        )
    )


@router.route(
    "PATCH",
    "/threads/{thread_id}",
    summary="Merge metadata into a thread (Prefer: return=minimal answers 204)",
    body=ThreadPatch,
    responses={200: "The thread", 204: "Updated (return=minimal)", 404: "Unknown thread"},
    returns=Thread,
)
async def update_thread(request: Request) -> Response:
    thread_id = path_uuid(request)
    body = await parse_body(request, ThreadPatch)
    if body.metadata is None and body.ttl is None:
        raise Invalid("metadata", "Field required (or ttl)")
    value: dict[str, Any] = {"thread_id": thread_id, "metadata": dict(body.metadata or {})}
    visible = await authorize(request, "threads", "update", value)
    metadata = value.get("metadata") or {}
    ttl = body.ttl.value() if body.ttl else None
    thread = await threads.update(ctx(request).pool, thread_id, metadata, visible=visible, ttl=ttl)
    if "return=minimal" in request.headers.get("prefer", ""):
        return no_content()
    return JSON(thread)


@router.route(
    "DELETE",
    "/threads/{thread_id}",
    summary="Delete a thread, its runs (running ones are stopped) and checkpoints",
    responses={204: "Deleted", 404: "Unknown thread"},
)
async def delete_thread(request: Request) -> Response:
    thread_id = path_uuid(request)
    visible = await authorize(request, "threads", "delete", {"thread_id": thread_id})
    await threads.delete(ctx(request).pool, thread_id, visible=visible)
    return no_content()


@router.route(
    "POST",
    "/threads/{thread_id}/copy",
    summary="Copy a thread: metadata, values and checkpoints, under a new id",
    responses={200: "The new thread", 404: "Unknown thread"},
    returns=Thread,
)
async def copy_thread(request: Request) -> Response:
    thread_id = path_uuid(request)
    # The copy keeps the source's metadata (its owner): reading the
    # source is what the request must be allowed.
    visible = await authorize(request, "threads", "read", {"thread_id": thread_id})
    return JSON(await threads.copy(ctx(request).pool, thread_id, visible=visible))


# -- state ---------------------------------------------------------------------

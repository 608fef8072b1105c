"""Assistants: create, read, update, delete, search and count them; draw
their graph and describe its schemas. Logic and SQL: ``pgqueue.assistants``.

Each handler asks the Auth first (``server.authorization``), with the
value the SDK's ``Auth.types.Assistants*`` describes, and then works from
that value: a handler may change it (stamp an owner in ``metadata``), so
it is validated again by the same model as the request."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.resources import assistants
from pgqueue.resources.visibility import Visible
from server.api import JSON, Router, no_content, parse_body, parse_query, validate
from server.authorization import authorize, rewrites
from server.context import ctx
from server.pages import Limit, Offset, page, search_of
from server.schemas import RunConfig

router = Router("assistants")

SelectField = Literal[
    "assistant_id",
    "graph_id",
    "name",
    "description",
    "config",
    "context",
    "created_at",
    "updated_at",
    "metadata",
    "version",
]


class Assistant(BaseModel):
    assistant_id: UUID
    graph_id: str
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    name: str
    description: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class GraphSchema(BaseModel):
    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


class AssistantCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    graph_id: str = Field(min_length=1, max_length=200)
    assistant_id: UUID | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=10_000)
    if_exists: Literal["raise", "do_nothing"] = "raise"


class AssistantPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    graph_id: str | None = Field(default=None, min_length=1, max_length=200)
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=10_000)


class AssistantFilter(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    graph_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=1000)


class AssistantSearchBody(AssistantFilter):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at", "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None


class VersionsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0


class LatestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Bounded to the column's range (integer): a larger number names no
    # version, and must get a 422 here, not the driver's refusal.
    version: int = Field(ge=1, le=2**31 - 1)


class DeleteQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    delete_threads: bool = False


class GraphQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # True: every level of subgraphs; a number: that many levels.
    xray: bool | int = False

    @field_validator("xray", mode="before")
    @classmethod
    def _words_and_digits(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            if value.isdigit():
                return int(value)
        return value


class SubgraphsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    recurse: bool = False


def assistant_id(request: Request) -> UUID:
    """The path's assistant: a UUID, or a graph id for its system assistant."""
    return assistants.resolve_id(ctx(request).registry, request.path_params["assistant_id"])


async def readable(request: Request) -> tuple[UUID, Visible]:
    """The path's assistant and what assistants.read lets the request see."""
    ident = assistant_id(request)
    return ident, await authorize(request, "assistants", "read", {"assistant_id": ident})


@router.route(
    "POST",
    "/assistants",
    summary="Create an assistant",
    body=AssistantCreate,
    responses={200: "The assistant", 409: "assistant_id taken (if_exists=raise)"},
    returns=Assistant,
)
async def create_assistant(request: Request) -> Response:
    body = await parse_body(request, AssistantCreate)
    # The id is chosen here so the handler sees the assistant it authorizes.
    value = body.model_dump(exclude={"description"})
    value.update(assistant_id=body.assistant_id or uuid4(), metadata=body.metadata or {})
    visible = await authorize(request, "assistants", "create", value)
    if rewrites(request, "assistants", "create"):
        body = validate(AssistantCreate, {**value, "description": body.description}, "body")
    context = ctx(request)
    found = await assistants.create(
        context.pool, context.registry, **body.model_dump(exclude_none=True), visible=visible
    )
    return JSON(found)


@router.route(
    "POST",
    "/assistants/search",
    summary="Search assistants (X-Pagination-Total, X-Pagination-Next)",
    body=AssistantSearchBody,
    responses={200: "A page of assistants"},
)
async def search_assistants(request: Request) -> Response:
    body = await parse_body(request, AssistantSearchBody)
    value = body.model_dump(include={"graph_id", "metadata", "limit", "offset"})
    visible = await authorize(request, "assistants", "search", value)
    if rewrites(request, "assistants", "search"):
        body = validate(AssistantSearchBody, {**body.model_dump(), **value}, "body")
    query = search_of(assistants.AssistantSearch, body)
    found, total = await assistants.search(ctx(request).pool, query, visible=visible)
    return page(found, total, body.offset, body.select)


@router.route(
    "POST",
    "/assistants/count",
    summary="Count assistants matching a filter",
    body=AssistantFilter,
)
async def count_assistants(request: Request) -> Response:
    body = await parse_body(request, AssistantFilter)
    value = body.model_dump(include={"graph_id", "metadata"})
    visible = await authorize(request, "assistants", "search", value)
    if rewrites(request, "assistants", "search"):
        body = validate(AssistantFilter, {**body.model_dump(), **value}, "body")
    found = await assistants.count(
        ctx(request).pool, body.metadata, body.graph_id, body.name, visible=visible
    )
    return JSON(found)


@router.route(
    "GET",
    "/assistants/{assistant_id}",
    summary="Get an assistant (by UUID, or a graph id for its system assistant)",
    responses={200: "The assistant", 404: "Unknown assistant"},
    returns=Assistant,
)
async def get_assistant(request: Request) -> Response:
    ident, visible = await readable(request)
    return JSON(await assistants.get(ctx(request).pool, ident, visible=visible))


@router.route(
    "PATCH",
    "/assistants/{assistant_id}",
    summary="Update an assistant (a new version; metadata merges)",
    body=AssistantPatch,
    responses={200: "The assistant", 404: "Unknown assistant", 409: "A system assistant"},
    returns=Assistant,
)
async def update_assistant(request: Request) -> Response:
    ident = assistant_id(request)
    body = await parse_body(request, AssistantPatch)
    value = {"assistant_id": ident, **body.model_dump()}
    visible = await authorize(request, "assistants", "update", value)
    if rewrites(request, "assistants", "update"):
        value.pop("assistant_id", None)  # the path names the assistant
        body = validate(AssistantPatch, value, "body")
    context = ctx(request)
    found = await assistants.update(
        context.pool, context.registry, ident, **dict(body), visible=visible
    )
    return JSON(found)


@router.route(
    "DELETE",
    "/assistants/{assistant_id}",
    summary="Delete an assistant (delete_threads: and the threads it ran on)",
    query=DeleteQuery,
    responses={204: "Deleted", 404: "Unknown assistant", 409: "A system assistant"},
)
async def delete_assistant(request: Request) -> Response:
    ident = assistant_id(request)
    query = parse_query(request, DeleteQuery)
    visible = await authorize(request, "assistants", "delete", {"assistant_id": ident})
    # Its threads go only as far as the request may delete threads.
    threads_visible = None
    if query.delete_threads:
        threads_visible = await authorize(request, "threads", "delete", {"thread_id": None})
    context = ctx(request)
    await assistants.delete(
        context.pool,
        context.registry,
        ident,
        delete_threads=query.delete_threads,
        visible=visible,
        threads_visible=threads_visible,
    )
    return no_content()


@router.route(
    "POST",
    "/assistants/{assistant_id}/versions",
    summary="An assistant's versions, newest first",
    body=VersionsBody,
    responses={200: "Versions, newest first", 404: "Unknown assistant"},
)
async def assistant_versions(request: Request) -> Response:
    ident = assistant_id(request)
    body = await parse_body(request, VersionsBody)
    value = {"assistant_id": ident, "metadata": body.metadata}
    visible = await authorize(request, "assistants", "read", value)
    if rewrites(request, "assistants", "read"):
        body = validate(
            VersionsBody, {**body.model_dump(), "metadata": value.get("metadata")}, "body"
        )
    found = await assistants.versions(
        ctx(request).pool, ident, body.metadata, body.limit, body.offset, visible=visible
    )
    return JSON(found)


@router.route(
    "POST",
    "/assistants/{assistant_id}/latest",
    summary="Make one of its versions the assistant's current one",
    body=LatestBody,
    responses={200: "The assistant", 404: "Unknown assistant or version"},
    returns=Assistant,
)
async def set_latest_version(request: Request) -> Response:
    ident = assistant_id(request)
    body = await parse_body(request, LatestBody)
    value: dict[str, Any] = {"assistant_id": ident, "version": body.version}
    visible = await authorize(request, "assistants", "update", value)
    if rewrites(request, "assistants", "update"):
        # The version's own metadata comes back whole: a handler's metadata
        # (which it may set on any update) has no place in a restore.
        body = validate(LatestBody, {"version": value.get("version")}, "body")
    found = await assistants.set_latest(ctx(request).pool, ident, body.version, visible=visible)
    return JSON(found)


@router.route(
    "GET",
    "/assistants/{assistant_id}/graph",
    summary="The assistant's graph as nodes and edges",
    query=GraphQuery,
    responses={200: "The graph", 404: "Unknown assistant"},
)
async def assistant_graph(request: Request) -> Response:
    query = parse_query(request, GraphQuery)
    ident, visible = await readable(request)
    context = ctx(request)
    _, graph = await assistants.graph_of(context.pool, context.registry, ident, visible=visible)
    return JSON(assistants.drawing(graph, query.xray))


@router.route(
    "GET",
    "/assistants/{assistant_id}/schemas",
    summary="JSON schemas of the assistant's graph (null where none can be made)",
    responses={200: "The schemas", 404: "Unknown assistant"},
    returns=GraphSchema,
)
async def assistant_schemas(request: Request) -> Response:
    ident, visible = await readable(request)
    context = ctx(request)
    graph_id, graph = await assistants.graph_of(
        context.pool, context.registry, ident, visible=visible
    )
    return JSON(assistants.schemas(graph_id, graph))


async def _subgraphs(request: Request, namespace: str | None) -> Response:
    query = parse_query(request, SubgraphsQuery)
    ident, visible = await readable(request)
    context = ctx(request)
    graph_id, graph = await assistants.graph_of(
        context.pool, context.registry, ident, visible=visible
    )
    return JSON(assistants.subgraphs(graph_id, graph, namespace, query.recurse))


@router.route(
    "GET",
    "/assistants/{assistant_id}/subgraphs",
    summary="Schemas of the graph's subgraphs, by namespace",
    query=SubgraphsQuery,
    responses={200: "Subgraph schemas", 404: "Unknown assistant"},
)
async def assistant_subgraphs(request: Request) -> Response:
    return await _subgraphs(request, None)


@router.route(
    "GET",
    "/assistants/{assistant_id}/subgraphs/{namespace}",
    summary="Schemas of the subgraphs under one namespace",
    query=SubgraphsQuery,
    responses={200: "Subgraph schemas", 404: "Unknown assistant"},
)
async def assistant_subgraphs_in(request: Request) -> Response:
    return await _subgraphs(request, request.path_params["namespace"])

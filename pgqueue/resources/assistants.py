"""Assistants: a graph of ``langgraph.json`` with its own config, context
and metadata, as the HTTP API creates, reads, versions and searches them.

Every graph has a system assistant (``graphs.system_assistant_id``), made at
server start and managed by ``langgraph.json``: it can be read and used, not
updated or deleted. Wherever an assistant id is accepted, a graph id names
that graph's system assistant.

Every version is kept (``assistant_versions``): an update makes a new one,
numbered after the highest so far, and ``set_latest`` makes the assistant
an earlier version again.

Every function a request reaches takes ``visible``, the Auth's answer for
it (``pgqueue.resources.visibility``; ``EVERYTHING`` without one): an
assistant it hides is answered exactly as a missing one (``NotFound``).

Errors are ``pgqueue.errors``' ``NotFound``, ``Conflict`` and ``Invalid``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from langgraph.pregel import Pregel
from pydantic import TypeAdapter, create_model

from pgqueue.db.encoding import loads
from pgqueue.db.sql import queries
from pgqueue.errors import Conflict, Invalid, NotFound
from pgqueue.execution.graphs import GraphRegistry, system_assistant_id
from pgqueue.resources import threads
from pgqueue.resources.pages import search_page
from pgqueue.resources.threads import dumps
from pgqueue.resources.visibility import Visible
from pgqueue.types import Queryable


@dataclass
class AssistantSearch:
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = 10
    offset: int = 0
    sort_by: str = "created_at"
    sort_order: str = "desc"

    def filters(self) -> tuple[Any, ...]:
        return (dumps(self.metadata), self.graph_id, self.name)


@dataclass
class _VisibleSearch(AssistantSearch):
    # The Auth's filter travels last among the filters: search_page passes
    # them to both the search and the count statement.
    auth_filter: str | None = None

    def filters(self) -> tuple[Any, ...]:
        return (*super().filters(), self.auth_filter)


def assistant_json(row: asyncpg.Record) -> dict[str, Any]:
    """An assistant, or one of its versions (which has no updated_at)."""
    out = {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "config": loads(row["config"]),
        "context": loads(row["context"]),
        "metadata": loads(row["metadata"]),
        "name": row["name"],
        "description": row["description"],
        "version": row["version"],
        "created_at": row["created_at"],
    }
    if "updated_at" in row.keys():
        out["updated_at"] = row["updated_at"]
    return out


def resolve_id(registry: GraphRegistry, ident: str) -> UUID:
    """An assistant id from a path: a UUID, or a graph id (its system assistant)."""
    if ident in registry.specs:
        return system_assistant_id(ident)
    try:
        return UUID(ident)
    except ValueError:
        raise Invalid(
            "assistant_id",
            f"{ident!r} is neither a UUID nor a graph id; graphs: {sorted(registry.specs)}",
        ) from None


def _known_graph(registry: GraphRegistry, graph_id: str) -> str:
    if graph_id not in registry.specs:
        raise Invalid(
            "graph_id", f"no graph {graph_id!r} in langgraph.json; graphs: {sorted(registry.specs)}"
        )
    return graph_id


def _refuse_system(registry: GraphRegistry, assistant_id: UUID, action: str) -> None:
    graph_id = registry.assistant_ids.get(assistant_id)
    if graph_id is not None:
        raise Conflict(
            f"assistant {assistant_id} is the system assistant of graph {graph_id!r}, "
            f"managed by langgraph.json: it cannot be {action}; create an assistant instead"
        )


async def create(
    db: Queryable,
    registry: GraphRegistry,
    *,
    graph_id: str,
    assistant_id: UUID | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    if_exists: str = "raise",
    visible: Visible,
) -> dict[str, Any]:
    """With ``if_exists="do_nothing"``, a taken id answers the existing
    assistant only if ``visible`` (the create's filter) shows it; one it
    hides is as taken as ever (409), and says nothing more."""
    _known_graph(registry, graph_id)
    assistant_id = assistant_id or uuid4()
    row = await db.fetchrow(
        queries.create_assistant,
        assistant_id,
        graph_id,
        name or "Untitled",
        description,
        json.dumps(config or {}),
        json.dumps(context or {}),
        json.dumps(metadata or {}),
    )
    if row is not None:
        return assistant_json(row)
    if if_exists == "do_nothing":
        try:
            return await get(db, assistant_id, visible=visible)
        except NotFound:
            pass
    raise Conflict(f"assistant {assistant_id} already exists")


async def get(db: Queryable, assistant_id: UUID, *, visible: Visible) -> dict[str, Any]:
    row = await db.fetchrow(queries.get_assistant, assistant_id, visible.filter)
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    return assistant_json(row)


async def update(
    db: Queryable,
    registry: GraphRegistry,
    assistant_id: UUID,
    *,
    graph_id: str | None = None,
    config: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
    description: str | None = None,
    visible: Visible,
) -> dict[str, Any]:
    _refuse_system(registry, assistant_id, "updated")
    if graph_id is not None:
        _known_graph(registry, graph_id)
    row = await db.fetchrow(
        queries.update_assistant,
        assistant_id,
        graph_id,
        dumps(config),
        dumps(context),
        dumps(metadata),
        name,
        description,
        visible.filter,
    )
    if row is None:
        raise NotFound(f"assistant {assistant_id} not found")
    return assistant_json(row)


async def delete(
    pool: asyncpg.Pool,
    registry: GraphRegistry,
    assistant_id: UUID,
    *,
    delete_threads: bool,
    visible: Visible,
    threads_visible: Visible | None,
) -> None:
    """Delete an assistant; with ``delete_threads``, also the threads it ran
    on (as ``DELETE /threads/{id}`` would, each), in the same transaction:
    those ``threads_visible`` (the threads.delete filter) shows; the others
    stay. ``threads_visible`` is required when ``delete_threads`` is."""
    _refuse_system(registry, assistant_id, "deleted")
    if delete_threads and threads_visible is None:
        raise ValueError("delete_threads needs threads_visible, the threads.delete filter")

    async def work(conn: asyncpg.Connection) -> bool:
        if await conn.fetchval(queries.delete_assistant, assistant_id, visible.filter) is None:
            return False
        if delete_threads:
            assert threads_visible is not None
            rows = await conn.fetch(
                queries.list_assistant_threads, assistant_id, threads_visible.filter
            )
            ids = [r["thread_id"] for r in rows]
            await threads.delete_many(conn, ids, visible=threads_visible)
        return True

    if not await threads.in_transaction(pool, work):
        raise NotFound(f"assistant {assistant_id} not found")


async def search(
    db: Queryable, query: AssistantSearch, *, visible: Visible
) -> tuple[list[dict[str, Any]], int]:
    """One page of the assistants ``visible`` shows and how many match in all."""
    scoped = _VisibleSearch(**asdict(query), auth_filter=visible.filter)
    return await search_page(
        db, queries.search_assistants, queries.count_assistants, scoped, assistant_json
    )


async def count(
    db: Queryable,
    metadata: dict[str, Any] | None = None,
    graph_id: str | None = None,
    name: str | None = None,
    *,
    visible: Visible,
) -> int:
    scoped = _VisibleSearch(
        metadata=metadata, graph_id=graph_id, name=name, auth_filter=visible.filter
    )
    return int(await db.fetchval(queries.count_assistants, *scoped.filters()))


async def versions(
    db: Queryable,
    assistant_id: UUID,
    metadata: dict[str, Any] | None,
    limit: int,
    offset: int,
    *,
    visible: Visible,
) -> list[dict[str, Any]]:
    """The assistant's versions, newest first."""
    await get(db, assistant_id, visible=visible)  # 404 for an unknown assistant, not []
    rows = await db.fetch(
        queries.list_assistant_versions,
        assistant_id,
        dumps(metadata),
        limit,
        offset,
        visible.filter,
    )
    return [assistant_json(r) for r in rows]


async def set_latest(
    db: Queryable, assistant_id: UUID, version: int, *, visible: Visible
) -> dict[str, Any]:
    row = await db.fetchrow(
        queries.set_latest_assistant_version, assistant_id, version, visible.filter
    )
    if row is None:
        await get(db, assistant_id, visible=visible)  # an unknown assistant says so
        raise NotFound(f"version {version} of assistant {assistant_id} not found")
    return assistant_json(row)


# -- the graph behind an assistant ------------------------------------------


async def graph_of(
    db: Queryable, registry: GraphRegistry, assistant_id: UUID, *, visible: Visible
) -> tuple[str, Pregel]:
    """The assistant's graph, for its schemas and drawing. A factory is
    called for each, with the assistant's config, as the platform calls it
    (``assistants.read``); a context it returns is left before the graph is
    handed back, as only its structure is read."""
    assistant = await get(db, assistant_id, visible=visible)
    graph_id = assistant["graph_id"]
    if graph_id not in registry.specs:
        raise NotFound(f"graph {graph_id!r} of assistant {assistant_id} is not in langgraph.json")
    async with registry.graph(graph_id, assistant["config"], "assistants.read") as graph:
        return graph_id, graph


def drawing(graph: Pregel, xray: bool | int) -> dict[str, Any]:
    """The graph's nodes and edges as JSON (what Studio draws)."""
    return graph.get_graph(xray=xray).to_json()


def _schema(make: Any) -> dict[str, Any] | None:
    # A graph whose types pydantic cannot describe (typing.TypedDict on
    # Python < 3.12, arbitrary classes) still has every other schema.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # get_config_jsonschema is deprecated
            result = make()
    except Exception:
        return None
    return result if isinstance(result, dict) else None


def _state_schema(graph_id: str, graph: Pregel) -> dict[str, Any] | None:
    """The state as Studio's input form needs it: one property per channel
    the graph streams, each typed by what an update of it takes. Built
    channel by channel because pydantic refuses a whole ``typing.TypedDict``
    on Python < 3.12, yet takes each of its fields; a channel it cannot
    describe is typed as anything rather than losing the whole schema.
    Named ``<graph_id>_state``, as ``langgraph dev`` names it."""
    fields: dict[str, Any] = {}
    for name in graph.stream_channels_list:
        # A managed value (no UpdateType) is not a field a user fills in.
        kind: Any = getattr(graph.channels[name], "UpdateType", Any)
        if _schema(lambda kind=kind: TypeAdapter(kind).json_schema()) is None:
            kind = Any
        fields[name] = (kind, None)
    return _schema(lambda: create_model(f"{graph_id}_state", **fields).model_json_schema())


# Keys of ``configurable`` that the server fills in, not the user.
_SERVER_CONFIGURABLE = (
    "thread_id",
    "checkpoint_id",
    "checkpoint_ns",
    "__pregel_checkpointer",
    "__pregel_store",
)


def _config_schema(graph: Pregel) -> dict[str, Any]:
    """What a user may configure: the schema of ``configurable`` alone (the
    rest of a RunnableConfig, such as ``max_concurrency``, is not a form
    field), as the platform answers. ``{}`` for a graph with none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # config_schema is deprecated for context
        fields = getattr(graph.config_schema(), "model_fields", {})
    if "configurable" not in fields:
        return {}
    configurable: Any = fields["configurable"].annotation
    found = _schema(lambda: TypeAdapter(configurable).json_schema()) or {}
    for key in _SERVER_CONFIGURABLE:
        found.get("properties", {}).pop(key, None)
    named = getattr(graph, "config_type", None)
    if found and getattr(named, "__name__", None):
        found["title"] = named.__name__  # type: ignore[union-attr]
    return found


def schemas(graph_id: str, graph: Pregel) -> dict[str, Any]:
    return {
        "graph_id": graph_id,
        "input_schema": _schema(graph.get_input_jsonschema),
        "output_schema": _schema(graph.get_output_jsonschema),
        "state_schema": _state_schema(graph_id, graph),
        "config_schema": _schema(lambda: _config_schema(graph)),
        "context_schema": _schema(graph.get_context_jsonschema),
    }


def subgraphs(
    graph_id: str, graph: Pregel, namespace: str | None, recurse: bool
) -> dict[str, dict[str, Any]]:
    return {
        ns: schemas(graph_id, sub)  # type: ignore[arg-type]
        for ns, sub in graph.get_subgraphs(namespace=namespace, recurse=recurse)
    }

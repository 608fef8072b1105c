"""The key-value store: ``PUT``, ``GET`` and ``DELETE /store/items``,
``POST /store/items/search`` and ``POST /store/namespaces``.

Backed by LangGraph's ``AsyncPostgresStore`` (``ctx.store``), the same
store graphs get, so items a graph writes are visible here and the other
way round. The SDK sends namespaces as lists, except on ``GET`` where the
query string carries them joined with dots; hence labels may not contain
dots.

Each route asks the Auth first (``server.authorization``, resource
"store"), with the value the SDK's ``Auth.types.Store*`` describes. A
store handler scopes a user by rewriting ``namespace`` (prefixing their
identity, say), so the route goes on with the namespace as the handler
left it, validated again as the client's would be. The store is
LangGraph's, with no metadata for a filter to read: a handler that answers
with a filter is refused (403) rather than served unfiltered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from langgraph.store.base import InvalidNamespaceError, Item, SearchItem
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.errors import Forbidden
from pgqueue.execution.graphs import MAX_TTL_MINUTES
from server.api import (
    JSON,
    ApiError,
    Router,
    invalid,
    no_content,
    parse_body,
    parse_query,
    validate,
)
from server.authorization import authorize, rewrites
from server.context import ctx
from server.pages import Limit, Offset

router = Router("store")

# The operators AsyncPostgresStore understands in a search filter; a nested
# object that is not one of these would reach it as an unknown operator.
FILTER_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}
MIN_TTL_MINUTES = 1 / 60


def _refuse(problem: str) -> PydanticCustomError:
    # A custom error: the message reads as written, without "Value error, ".
    return PydanticCustomError("invalid_store_input", "{problem}", {"problem": problem})


def _labels(labels: list[str]) -> list[str]:
    for label in labels:
        if not label:
            raise _refuse("labels must not be empty strings")
        if "." in label:
            raise _refuse(f"label {label!r} contains '.', which separates labels")
        if "\x00" in label:
            raise _refuse(f"label {label!r} contains a NUL character")
    return labels


def _item_namespace(labels: list[str]) -> list[str]:
    if not labels:
        raise _refuse("must have at least one label")
    if labels[0] == "langgraph":
        raise _refuse("the root label 'langgraph' is reserved")
    return _labels(labels)


def _key(key: str) -> str:
    if "\x00" in key:
        raise _refuse("must not contain a NUL character")
    return key


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    # jsonb cannot hold U+0000; say so here rather than as a database error.
    if _has_nul(value):
        raise _refuse("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    return value


def _ttl(minutes: float) -> float:
    # The store hands PostgreSQL an interval as text ("6e-06 seconds" is
    # not one) and keeps the minutes in an int column.
    if not MIN_TTL_MINUTES <= minutes <= MAX_TTL_MINUTES:
        raise _refuse(
            f"{minutes} minutes is out of range: from one second ({MIN_TTL_MINUTES:.4f}) "
            f"to a century ({MAX_TTL_MINUTES}), in minutes"
        )
    return minutes


# An item's namespace: at least one label; a search prefix may be empty.
ItemNamespace = Annotated[list[str], AfterValidator(_item_namespace)]
Labels = Annotated[list[str], AfterValidator(_labels)]
Key = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_key)]


class StorePut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: ItemNamespace
    key: Key
    value: Annotated[dict[str, Any], AfterValidator(_storable)]
    # Which fields to embed (False: none); ignored unless an index is configured.
    index: Literal[False] | list[str] | None = None
    # Minutes until the item expires.
    ttl: Annotated[float, AfterValidator(_ttl)] | None = None


class StoreDelete(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace: ItemNamespace
    key: Key


class StoreGet(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Labels joined with dots, as the SDK sends them: "users.alice".
    namespace: str = Field(max_length=10_000)
    key: Key
    refresh_ttl: bool | None = None


class StoreSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    namespace_prefix: Labels = Field(default_factory=list)
    # {"field": value} matches equal values; {"field": {"$gt": 3}} compares.
    filter: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    # Natural-language query; used only when the store has an embedding index.
    query: str | None = Field(default=None, max_length=10_000)
    refresh_ttl: bool | None = None


class StoreNamespaces(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Labels may be "*" to match any label at that position.
    prefix: Labels | None = None
    suffix: Labels | None = None
    max_depth: int | None = Field(default=None, ge=1, le=1000)
    limit: Limit = 100
    offset: Offset = 0


class StoreItem(BaseModel):
    """An item as the API answers it (the SDK's ``Item``; search adds ``score``)."""

    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    score: float | None = None


class StoreSearchResult(BaseModel):
    items: list[StoreItem]


class StoreNamespaceList(BaseModel):
    namespaces: list[list[str]]


def _item(item: Item) -> dict[str, Any]:
    data = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    if isinstance(item, SearchItem):
        data["score"] = item.score
    return data


def _out_of_range(value: Any) -> bool:
    """An integer the store cannot encode (it writes filters with orjson,
    which holds integers to 64 bits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**64
    if isinstance(value, dict):
        return any(_out_of_range(v) for v in value.values())
    if isinstance(value, list):
        return any(_out_of_range(v) for v in value)
    return False


def _check_filter(filter_: dict[str, Any] | None) -> None:
    for field_name, condition in (filter_ or {}).items():
        if _out_of_range(condition):
            raise invalid(f"filter.{field_name}", "integers must fit in 64 bits")
        if isinstance(condition, dict):
            unknown = sorted(set(condition) - FILTER_OPERATORS)
            if unknown or not condition:
                raise invalid(
                    f"filter.{field_name}",
                    f"an object here is a set of operators ({sorted(FILTER_OPERATORS)}); "
                    f"got {unknown or 'none'}. To match an object value use {{'$eq': {{...}}}}",
                )


def _namespace_error(exc: InvalidNamespaceError) -> ApiError:
    return invalid("namespace", str(exc))


async def _authorized(request: Request, action: str, value: dict[str, Any]) -> bool:
    """Ask the store's handler for ``action``; True if one ran, so ``value``
    may have changed and must be checked again. Refused (403) if the
    handler answered with a filter the store cannot apply."""
    if not rewrites(request, "store", action):
        return False
    visible = await authorize(request, "store", action, value)
    if not visible.everything:
        raise Forbidden(
            "store handlers scope by rewriting the namespace; "
            "a metadata filter cannot be applied to the store"
        )
    return True


@router.route(
    "PUT",
    "/store/items",
    summary="Create or replace an item",
    body=StorePut,
    responses={204: "Stored"},
)
async def put_item(request: Request) -> Response:
    body = await parse_body(request, StorePut)
    value = {**dict(body), "namespace": tuple(body.namespace)}
    if await _authorized(request, "put", value):
        body = validate(StorePut, value, "body")
    # No ttl (langgraph-sdk leaves a None out): the store's default TTL from
    # langgraph.json, which an explicit ttl=None would switch off.
    ttl: dict[str, Any] = {} if body.ttl is None else {"ttl": body.ttl}
    try:
        await ctx(request).store.aput(
            tuple(body.namespace), body.key, body.value, index=body.index, **ttl
        )
    except InvalidNamespaceError as exc:
        raise _namespace_error(exc) from None
    return no_content()


@router.route(
    "GET",
    "/store/items",
    summary="Read one item",
    query=StoreGet,
    returns=StoreItem,
)
async def get_item(request: Request) -> Response:
    query = parse_query(request, StoreGet)
    try:
        namespace = _item_namespace(query.namespace.split(".") if query.namespace else [])
    except PydanticCustomError as exc:
        raise invalid("namespace", exc.message()) from None
    key = query.key
    value: dict[str, Any] = {"namespace": tuple(namespace), "key": key}
    if await _authorized(request, "get", value):
        # The same checks as a delete's namespace and key (a list, not dots).
        where = validate(StoreDelete, value, "query")
        namespace, key = where.namespace, where.key
    item = await ctx(request).store.aget(tuple(namespace), key, refresh_ttl=query.refresh_ttl)
    # A missing item is a 200 with null, as on the platform: the SDKs
    # return None for it rather than raise.
    return JSON(None if item is None else _item(item))


@router.route(
    "DELETE",
    "/store/items",
    summary="Delete an item (deleting a missing item is not an error)",
    body=StoreDelete,
    responses={204: "Deleted"},
)
async def delete_item(request: Request) -> Response:
    body = await parse_body(request, StoreDelete)
    value = {"namespace": tuple(body.namespace), "key": body.key}
    if await _authorized(request, "delete", value):
        body = validate(StoreDelete, value, "body")
    try:
        await ctx(request).store.adelete(tuple(body.namespace), body.key)
    except InvalidNamespaceError as exc:
        raise _namespace_error(exc) from None
    return no_content()


@router.route(
    "POST",
    "/store/items/search",
    summary="Items under a namespace prefix, filtered by value fields",
    body=StoreSearch,
    returns=StoreSearchResult,
)
async def search_items(request: Request) -> Response:
    body = await parse_body(request, StoreSearch)
    value = {
        "namespace": tuple(body.namespace_prefix),
        "filter": body.filter,
        "limit": body.limit,
        "offset": body.offset,
        "query": body.query,
    }
    if await _authorized(request, "search", value):
        value["namespace_prefix"] = value.pop("namespace", None)
        body = validate(StoreSearch, {**dict(body), **value}, "body")
    _check_filter(body.filter)
    try:
        items = await ctx(request).store.asearch(
            tuple(body.namespace_prefix),
            query=body.query,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except InvalidNamespaceError as exc:
        raise invalid("namespace_prefix", str(exc)) from None
    return JSON({"items": [_item(i) for i in items]})


@router.route(
    "POST",
    "/store/namespaces",
    summary="Namespaces, by prefix and suffix, truncated to max_depth",
    body=StoreNamespaces,
    returns=StoreNamespaceList,
)
async def list_namespaces(request: Request) -> Response:
    body = await parse_body(request, StoreNamespaces)
    value = {
        "namespace": tuple(body.prefix) if body.prefix else None,
        "suffix": tuple(body.suffix) if body.suffix else None,
        "max_depth": body.max_depth,
        "limit": body.limit,
        "offset": body.offset,
    }
    if await _authorized(request, "list_namespaces", value):
        value["prefix"] = value.pop("namespace", None)
        body = validate(StoreNamespaces, value, "body")
    found = await ctx(request).store.alist_namespaces(
        prefix=tuple(body.prefix) if body.prefix else None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return JSON({"namespaces": [list(ns) for ns in found]})

"""Paging, shared by the routes that list things: the bounds every list
puts on ``limit`` and ``offset``, ``select`` (which fields of each item to
answer), and the X-Pagination headers a search answers with.

The bounds are written once so that every list refuses the same pages
(and the OpenAPI document says the same of each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, Field

from server.api import JSON

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

S = TypeVar("S", bound="DataclassInstance")

# ``limit: Limit = 10``: the default stays with each model, it differs.
Limit = Annotated[int, Field(ge=1, le=1000)]
Offset = Annotated[int, Field(ge=0, le=10_000_000)]


def pagination_headers(offset: int, returned: int, total: int) -> dict[str, str]:
    """X-Pagination-Total, and X-Pagination-Next (the next page's offset)
    while there is a next page; the SDK's ``response_format="object"``
    reads the latter."""
    headers = {"X-Pagination-Total": str(total)}
    if returned and offset + returned < total:
        headers["X-Pagination-Next"] = str(offset + returned)
    return headers


def project(items: list[dict[str, Any]], select: Sequence[str] | None) -> list[dict[str, Any]]:
    if not select:
        return items
    return [{k: item.get(k) for k in select} for item in items]


def page(
    items: list[dict[str, Any]], total: int, offset: int, select: Sequence[str] | None
) -> JSON:
    """One page of a search: the selected fields of each item, with the
    pagination headers."""
    return JSON(project(items, select), headers=pagination_headers(offset, len(items), total))


def search_of(search: type[S], body: BaseModel) -> S:
    """The library's search (a dataclass) from a search body: the fields
    both have, by name; one the client left out (None) takes the library's
    default (its sort order, for one)."""
    names = {f.name for f in dataclasses.fields(search)}
    return search(**{k: v for k, v in body if k in names and v is not None})

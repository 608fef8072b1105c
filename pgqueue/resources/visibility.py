"""Which rows of a resource a request may see.

With an Auth that has ``@auth.on`` handlers, each request is answered a
metadata filter (or none) by the handler for its resource and action. The
filter travels to SQL as one jsonb parameter of every resource query, and
``pgqueue_auth_match(metadata, filter)`` (migration 0010) keeps the rows it
accepts; a row it hides is answered exactly as a missing one. ``Visible``
is that parameter: resource functions require one (there is no default),
so a code path that forgot to ask cannot compile a query without deciding.

The filter's shape is checked here, before it reaches the database, as the
platform checks it: keys name metadata fields; a value is matched exactly,
or is ``{"$eq": v}`` or ``{"$contains": v}`` (``v`` a value or a list);
``$and``/``$or`` take a list of at least two filters, nested at most two
deep. Anything else is the handler's bug: ``InvalidFilter``, answered 403
(nothing is let through on a filter that cannot be read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pgqueue.errors import InvalidFilter

MAX_NESTING = 2
OPERATORS = ("$eq", "$contains")


@dataclass(frozen=True)
class Visible:
    """A metadata filter as SQL takes it (JSON text), or None: every row."""

    filter: str | None

    @property
    def everything(self) -> bool:
        return self.filter is None


EVERYTHING = Visible(None)


def matching(metadata_filter: Mapping[str, Any]) -> Visible:
    """The rows whose metadata passes ``metadata_filter`` (a handler's
    answer); an empty filter hides nothing."""
    if not isinstance(metadata_filter, Mapping):
        raise InvalidFilter(f"expected a dict, got {type(metadata_filter).__name__}")
    _check(metadata_filter, 0)
    if not metadata_filter:
        return EVERYTHING
    return Visible(json.dumps(metadata_filter, separators=(",", ":"), default=str))


def _check(f: Mapping[str, Any], depth: int) -> None:
    if depth > MAX_NESTING:
        raise InvalidFilter(f"operators nest at most {MAX_NESTING} deep")
    for key, value in f.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"filter keys are strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or len(value) < 2:
                raise InvalidFilter(f"{key} takes a list of at least two filters")
            for group in value:
                if not isinstance(group, Mapping):
                    raise InvalidFilter(f"{key} takes filters (dicts), got {group!r}"[:200])
                _check(group, depth + 1)
        elif key.startswith("$"):
            raise InvalidFilter(f"unknown operator {key!r}; use $eq, $contains, $and or $or")
        elif isinstance(value, Mapping):
            if len(value) != 1 or next(iter(value)) not in OPERATORS:
                raise InvalidFilter(
                    f"{key}: a dict value must be one operator, $eq or $contains; got "
                    f"{sorted(value)}"
                )

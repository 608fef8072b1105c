"""Graph state and stream chunks as JSON, encoded once.

LangGraph values hold more than JSON types: pydantic models (LangChain
messages among them) are written as their dump, dataclasses as their
fields, sets as lists, anything else as its ``str``.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg.types.json import Jsonb


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    if isinstance(obj, set | frozenset):
        return list(obj)
    return str(obj)


def dumps(value: Any) -> str:
    return json.dumps(value, default=_default)


def jsonb(value: Any) -> Jsonb:
    """A psycopg jsonb parameter, encoded with the rules above."""
    return Jsonb(value, dumps=dumps)


def loads(value: Any) -> Any:
    """A jsonb column as asyncpg returns it (JSON text; None for NULL)."""
    return json.loads(value) if isinstance(value, str) else value

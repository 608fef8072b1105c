"""Exceptions shared across pgqueue's modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# SQLSTATE raised by pgqueue_assert_lease() (migrations 0002).
LEASE_LOST_SQLSTATE = "PGQ01"


class LeaseLost(Exception):
    """The worker no longer holds the run's lease (swept, cancelled, taken
    over): nothing it tried to write in that transaction was committed."""


@contextmanager
def fenced(what: str) -> Iterator[None]:
    """Raise ``LeaseLost`` where a fenced write hit the fence: the database
    error with SQLSTATE PGQ01, from psycopg or asyncpg alike."""
    try:
        yield
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == LEASE_LOST_SQLSTATE:
            raise LeaseLost(f"{what}: lease lost; nothing was written") from exc
        raise

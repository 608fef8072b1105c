"""Every error pgqueue raises on purpose, in one hierarchy.

``PgqueueError`` is the base; each subclass carries a default message as a
class attribute, so ``raise NotFound()`` still says something, and callers
pass a specific one when they know more. The HTTP server answers the
client's refusals (``NotFound``, ``Conflict``, ``Invalid``) with a 4xx from
one table (``server.errors``); the CLI turns the operator's (``ConfigError``,
``Unavailable``, ``SchemaOutdated``) into an exit with the message. Some
classes also derive from the builtin they replaced (``LookupError``,
``ValueError``, ``RuntimeError``), so code that caught those still does.

``RetriableError`` is not a ``PgqueueError``: pgqueue never raises it, your
nodes do, to ask for a retry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

# SQLSTATE raised by pgqueue_assert_lease() (migrations 0002).
LEASE_LOST_SQLSTATE = "PGQ01"


class PgqueueError(Exception):
    """Base of every error pgqueue raises on purpose."""

    message = "pgqueue error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


# -- refusals a client can cause (the server answers them with a 4xx) --------


class NotFound(PgqueueError, LookupError):
    """No such resource (a thread, run, assistant, cron, checkpoint, ...)."""

    message = "not found"


class Conflict(PgqueueError):
    """The request is valid but the resource's state forbids it."""

    message = "the resource's current state does not allow this"


class ThreadBusy(Conflict):
    """multitask_strategy 'reject' and the thread already has a live run."""

    message = "the thread is already running a task"

    def __init__(self, thread_ids: Sequence[UUID]) -> None:
        self.thread_ids = list(thread_ids)
        super().__init__(
            "thread " + ", ".join(str(t) for t in self.thread_ids) + " is already running a task; "
            "wait for it to finish or choose a different multitask_strategy"
        )


class Forbidden(PgqueueError):
    """The Auth's authorization handler refused the request (it returned
    False, or raised)."""

    message = "forbidden"


class InvalidFilter(Forbidden):
    """An authorization handler returned a filter pgqueue cannot apply: the
    request is refused rather than served unfiltered."""

    message = "the authorization handler returned an invalid filter"


class Invalid(PgqueueError, ValueError):
    """A request field that a schedule, the database or a graph refuses,
    named by ``field``; ``problem`` says why."""

    message = "invalid value"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- the run's lease -----------------------------------------------------------


class LeaseLost(PgqueueError):
    """The worker no longer holds the run's lease (swept, cancelled, taken
    over): nothing it tried to write in that transaction was committed."""

    message = "lease lost; nothing was written"


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


# -- the operator's set-up (the CLI exits with the message) --------------------


class ConfigError(PgqueueError, ValueError):
    """A configuration pgqueue cannot work with: langgraph.json (or the auth
    it names) missing, malformed or naming a graph that won't load, or a
    setting (flag, environment variable, service config) out of range."""

    message = "langgraph.json is missing, malformed, or names a graph that won't load"


class Unavailable(PgqueueError, RuntimeError):
    """Something this command needs is not installed or not enabled: the
    embedded PostgreSQL, pg_cron."""

    message = "a required component is not available"


class SchemaOutdated(PgqueueError):
    """The database is not at this version's newest migration; ``server``
    and ``worker`` never change it themselves."""

    message = "the database schema is outdated; run `pgqueue migrate` first"


# -- raised by your code ---------------------------------------------------


class RetriableError(Exception):
    """Raise (or subclass) in a node to have the run retried with backoff
    instead of failing at once."""


__all__ = [
    "LEASE_LOST_SQLSTATE",
    "ConfigError",
    "Conflict",
    "Invalid",
    "LeaseLost",
    "NotFound",
    "PgqueueError",
    "RetriableError",
    "SchemaOutdated",
    "ThreadBusy",
    "Unavailable",
    "fenced",
]

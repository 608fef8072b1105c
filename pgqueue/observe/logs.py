"""Which run a log line is about, and one JSON object per line.

The worker binds the run it executes (``bind_run``) in that run's own task.
A context variable, so every line logged while the run executes -- by
pgqueue, by the graph, by a library the graph calls -- can say which run,
and none logged by other tasks does. ``RunFilter`` copies ``run_id``,
``thread_id`` and ``attempt`` onto such records (a record that names
another run in its ``extra`` keeps its own); the formatters print them:
``Tagged`` after the first line of what the handler's own formatter
writes, ``JsonFormatter`` as keys of a JSON object, with the ``event`` and
every other ``extra`` key.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

RUN_KEYS = ("run_id", "thread_id", "attempt")

_run: ContextVar[tuple[str, str | None, int] | None] = ContextVar("pgqueue_log_run", default=None)

# What every LogRecord has: the rest of its attributes came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def bind_run(run_id: UUID, thread_id: UUID | None, attempt: int) -> None:
    """Log lines of the current task (and the tasks it starts) are about
    this attempt of this run."""
    _run.set((str(run_id), None if thread_id is None else str(thread_id), attempt))


class RunFilter(logging.Filter):
    """Adds the bound run's ids to a record (see the module doc). Put it on
    a handler: a logger's filters do not see records from its children."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _run.get()
        if bound is None:
            return True
        own = getattr(record, "run_id", None)
        if own is not None and str(own) != bound[0]:
            return True  # about another run: its own ids only
        for key, value in zip(RUN_KEYS, bound, strict=True):
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class Tagged(logging.Formatter):
    """A handler's formatter, with ``[run_id=... thread_id=... attempt=...]``
    after the first line of each record about a run."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        tags = " ".join(
            f"{key}={getattr(record, key)}"
            for key in RUN_KEYS
            if getattr(record, key, None) is not None
        )
        if not tags:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{tags}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger,
    message, then event, run_id, thread_id, attempt when present, any other
    ``extra`` key, and the traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("event", *RUN_KEYS):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(log_format: str) -> None:
    """The root logger's handlers (``logging.basicConfig``'s, say) write
    ``log_format`` ("text": as they did, plus the run's ids; "json": one
    object per line), each with a ``RunFilter``."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RunFilter) for f in handler.filters):
            handler.addFilter(RunFilter())
        current = handler.formatter
        if log_format == "json":
            handler.setFormatter(JsonFormatter())
        elif not isinstance(current, Tagged):
            handler.setFormatter(Tagged(current or logging.Formatter()))

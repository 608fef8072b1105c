"""How the operator commands answer: a table for people (rich), one JSON
document on stdout for scripts (``--json``), and the progress of a bulk
operation on stderr: a bar on a terminal, a line now and then otherwise
(a log file or a pipe gets no escape codes)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any
from uuid import UUID

import asyncpg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pgqueue.cli.database import said

# Exit status of the operator commands (pgqueue runs ..., pgqueue stats).
OK, NOTHING, USAGE, NOT_FOUND, DATABASE, INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_CODES = (
    "Exit status: 0 done; 1 nothing to do (no run matched, or a named run was not in a "
    "state this command acts on); 2 bad usage or input; 3 a named run does not exist; "
    "4 the database could not be reached or refused; 130 interrupted (Ctrl-C: the batch "
    "under way finishes, what was done stays done, the rest is untouched)."
)
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Seconds between progress lines when stderr is not a terminal.
PLAIN_PROGRESS_EVERY = 1.0


def _stdout() -> Console:
    console = Console()
    if not console.is_terminal:
        # A pipe or a file: rows unfolded (whole ids, one line a row, for
        # grep and cut), not wrapped at an imagined 80 columns.
        console = Console(width=10_000)
    return console


def parse_age(text: str) -> timedelta:
    """'30s', '10m', '2h', '7d', '1w' as a duration; ValueError otherwise
    (argparse turns it into exit 2 naming the option)."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age: a number and a unit, s m h d or w (30s, 2h, 7d)")
    return timedelta(seconds=float(match[1]) * _SECONDS[match[2]])


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def print_json(document: Any) -> None:
    """One JSON document on stdout (ids and times as strings, durations in
    seconds)."""
    print(json.dumps(document, default=_plain, indent=2, sort_keys=False))


def ago(seconds: float | None) -> str:
    """A duration for people: 45s, 12m, 3h05m, 2d04h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def since(moment: datetime | None, now: datetime) -> str:
    return "-" if moment is None else ago((now - moment).total_seconds())


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """A table on stdout for people."""
    t = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*("-" if v is None else str(v) for v in row))
    _stdout().print(t)


def fields(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> None:
    """Name / value lines for one record."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for name, value in pairs:
        t.add_row(name, "-" if value is None else str(value))
    console = _stdout()
    if title:
        console.print(title, style="bold")
    console.print(t)


def error(message: str) -> None:
    print(f"pgqueue: {message}", file=sys.stderr)


def run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine; a database that cannot be reached or
    refuses is exit 4 with what it said, not a traceback."""
    try:
        return asyncio.run(main())
    except DB_ERRORS as exc:
        error(f"the database could not be reached or refused: {said(exc)}")
        return DATABASE


class ProgressReport:
    """Progress of a bulk operation on stderr; a context manager, called
    with (done, total) after each batch."""

    def __init__(self, verb: str, total: int, *, enabled: bool = True) -> None:
        self.verb = verb
        self.total = total
        self.enabled = enabled
        self.console = Console(stderr=True)
        self.bar: Progress | None = None
        self.task = TaskID(0)
        self.last_line = 0.0
        self.last_done = -1
        self.done = 0

    def __enter__(self) -> ProgressReport:
        if self.enabled and self.console.is_terminal:
            self.bar = Progress(
                TextColumn(f"{self.verb}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.verb, total=self.total)
        return self

    def __call__(self, done: int, total: int) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            return
        if not self.enabled:
            return
        now = time.monotonic()
        if done == total or now - self.last_line >= PLAIN_PROGRESS_EVERY:
            self._line(done)
            self.last_line = now

    def _line(self, done: int) -> None:
        if done != self.last_done:
            print(f"pgqueue: {self.verb} {done}/{self.total}", file=sys.stderr, flush=True)
            self.last_done = done

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        elif self.enabled:
            # Where a stop left it, whenever the last line was.
            self._line(self.done)

"""Where the commands' log lines go.

A first ``pgqueue serve`` or ``pgqueue demo`` on the embedded server used
to print about 60 lines: pgserver's INFO records (initdb's whole output and
the commands it ran) and alembic's, with the one line that matters lost
among them. So on the terminal the libraries pgqueue drives speak only of
warnings and errors, and pgqueue prints a few lines of its own (where the
data lives, what was migrated, the URL); pgqueue's own INFO records stay,
as they are few and about the queue (a worker started, runs requeued).
``--verbose`` shows everything. With the embedded server, everything also
goes to ``pgqueue.log`` beside its data directory, to read when something
went wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Loggers whose INFO records are their own business, not the user's.
CHATTY = ("pgserver", "alembic", "uvicorn.error", "httpx")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _QuietLibraries(logging.Filter):
    """Drops records below WARNING from the CHATTY loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in CHATTY)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every library's log records (pgserver's, alembic's) too",
    )


def configure(level: str, *, verbose: bool) -> None:
    """The terminal's handler (stderr): ``level`` and up, libraries quiet
    unless ``verbose``."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        handler.addFilter(_QuietLibraries())
    root.addHandler(handler)


def also_to_file(path: Path) -> None:
    """Every record at INFO and up to ``path`` as well (appended), whatever
    the terminal shows. Once per process and path."""
    path = path.resolve()
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    if root.level > logging.INFO:
        # The terminal's own level stays on its handler.
        for other in root.handlers:
            if other is not handler and other.level == logging.NOTSET:
                other.setLevel(root.level)
        root.setLevel(logging.INFO)

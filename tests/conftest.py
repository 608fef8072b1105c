from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import dbs


@pytest.fixture(scope="session")
def shared_dir(pytestconfig: pytest.Config) -> Path:
    # One embedded server per checkout, joined by every xdist worker. It
    # lives outside pytest's basetemp on purpose: pytest deletes old
    # /tmp/pytest-of-USER/pytest-N directories when other sessions start,
    # and once took a running server's data directory with it.
    checkout = hashlib.sha256(str(pytestconfig.rootpath).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"pgqueue-tests-{os.getuid()}-{checkout}"


@pytest.fixture(scope="session")
def admin_url(shared_dir: Path) -> str:
    return dbs.server_url(shared_dir)


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> str:
    return dbs.ensure_template(admin_url)


@pytest.fixture
def database_url(admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    name = dbs.create_database(admin_url, template_db)
    yield dbs.with_database(admin_url, name)
    dbs.drop_database(admin_url, name)


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """A fresh database with no schema (for migration tests)."""
    name = dbs.create_database(admin_url)
    yield dbs.with_database(admin_url, name)
    dbs.drop_database(admin_url, name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()

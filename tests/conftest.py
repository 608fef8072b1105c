from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.support import dbs


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Under xdist each worker has its own basetemp; their parent is shared,
    # so every worker joins the same embedded server.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


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

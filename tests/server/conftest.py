"""One ``pgqueue serve`` per test module (starting one costs seconds), on a
database of its own; tests that need a fresh server use ``server_process``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support import dbs
from tests.support.server import ServerProcess, server_process

# The test graphs record every node execution here (tests/graphs/graphs.py).
NODE_RUNS = (
    "CREATE TABLE node_runs (run_id text, node text, attempt int, "
    "at timestamptz DEFAULT clock_timestamp())"
)


@pytest.fixture(scope="module")
def module_database_url(admin_url: str, template_db: str) -> Iterator[str]:
    name = dbs.create_database(admin_url, template_db)
    url = dbs.with_database(admin_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(NODE_RUNS)
    yield url
    dbs.drop_database(admin_url, name)


@pytest.fixture(scope="module")
def server(module_database_url: str) -> Iterator[ServerProcess]:
    with server_process(module_database_url) as proc:
        yield proc


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server.url)
    yield client
    await client.http.client.aclose()


@pytest.fixture
async def db(module_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The server's own database, to check what a request wrote."""
    pool = await asyncpg.create_pool(module_database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()

"""One ``pgqueue serve`` per test module (starting one costs seconds), on a
database of its own; tests that need a fresh server use ``server_process``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import psycopg
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support import dbs
from tests.support.server import ServerProcess, server_process
from tests.support.two_users import auth_config, client_of, fresh

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


# -- authorization (tests/server/test_authorization*.py) -----------------------


@pytest.fixture(scope="module")
def owners_server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with tests/graphs/auth/owners.py: it stamps the creator as
    ``metadata["owner"]`` and filters every read by it (assistants also show
    the system ones), prefixes store namespaces with the user, refuses user
    "denied" (the handler returns False) and fails for user "broken" (the
    handler raises)."""
    config = auth_config(tmp_path_factory.mktemp("owners"), "owners.py")
    with server_process(module_database_url, config=config) as proc:
        yield proc


@pytest.fixture
async def users(owners_server: ServerProcess) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """Two fresh users a and b, and clients for them and the refused ones."""
    a, b = fresh("a"), fresh("b")
    clients = {name: client_of(owners_server, name) for name in (a, b, "denied", "broken")}
    yield a, b, clients
    for c in clients.values():
        await c.aclose()

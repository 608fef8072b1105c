"""Authentication with langgraph.json's auth (langgraph_sdk.Auth), driven
by the SDK with and without credentials."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client

from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

AUTH_DIR = REPO / "tests" / "graphs" / "auth"


@pytest.fixture(scope="module")
def auth_server(module_database_url: str) -> Iterator[ServerProcess]:
    with server_process(module_database_url, config=AUTH_DIR / "langgraph.json") as proc:
        yield proc


def _bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{user}"}


def test_requests_without_valid_credentials_are_refused(auth_server: ServerProcess) -> None:
    url = auth_server.url
    missing = httpx.post(f"{url}/threads", json={}, timeout=30)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "no valid token for /threads"}
    wrong = httpx.get(f"{url}/assistants/whoami", headers={"Authorization": "Basic x"}, timeout=30)
    assert wrong.status_code == 401
    # Health, info and the API's description stay open.
    for path in ("/ok", "/info", "/openapi.json"):
        assert httpx.get(url + path, timeout=30).status_code == 200, path


async def test_the_user_reaches_the_graph(auth_server: ServerProcess) -> None:
    client = get_client(url=auth_server.url, headers=_bearer("alice"))
    try:
        thread = await client.threads.create()
        out = await client.runs.wait(thread["thread_id"], "whoami", input={})
        assert out == {"user": "alice", "permissions": []}
        # Stateless, streamed: the same.
        parts = [
            p async for p in client.runs.stream(None, "whoami", input={}, stream_mode="values")
        ]
        assert parts[-1].data == {"user": "alice", "permissions": []}
    finally:
        await client.aclose()
    admin = get_client(url=auth_server.url, headers=_bearer("admin"))
    try:
        assert await admin.runs.wait(None, "whoami", input={}) == {
            "user": "admin",
            "permissions": ["admin"],
        }
    finally:
        await admin.aclose()


async def test_a_crons_runs_run_as_the_user_who_created_it(
    auth_server: ServerProcess, db: asyncpg.Pool
) -> None:
    """A tick has no request to authenticate: the cron keeps its creator,
    and each tick's run carries them to the graph."""
    client = get_client(url=auth_server.url, headers=_bearer("carol"))
    try:
        thread = await client.threads.create()
        cron = await client.crons.create_for_thread(
            thread["thread_id"], "whoami", schedule="0 0 1 1 *", input={}
        )
        assert cron["user_id"] == "carol"
        # Due now, rather than on the first of January.
        await db.execute(
            "UPDATE crons SET next_run_at = now() WHERE cron_id = $1", uuid.UUID(cron["cron_id"])
        )

        async def ran() -> list[Any]:
            listed = await client.runs.list(thread["thread_id"])
            return [r for r in listed if r["status"] not in ("pending", "running")]

        [run] = await eventually(ran, timeout=60, what="the cron's run")
        assert run["status"] == "success", await client.runs.join(
            thread["thread_id"], run["run_id"]
        )
        state = await client.threads.get_state(thread["thread_id"])
        assert state["values"] == {"user": "carol", "permissions": []}
    finally:
        await client.aclose()

"""langgraph.json's ``http`` section beyond CORS (server/http_app.py): the
user's own app, authentication on its routes, route groups switched off, and
request headers copied into runs, each on a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support.procs import REPO, write_config
from tests.support.server import refused_start, server_process

GRAPHS = REPO / "tests" / "graphs"
AUTH = {"path": str(GRAPHS / "auth" / "auth.py") + ":auth"}


def config(tmp_path: Path, http: dict[str, Any], **more: Any) -> Path:
    """The test graphs' user app (tests/graphs/http_app.py) and ``http``."""
    graphs = {"show": "http_app.py:show_config", "echo": "graphs.py:echo_graph"}
    http = {"app": str(GRAPHS / "http_app.py") + ":app", **http}
    return write_config(tmp_path, graphs, http=http, **more)


def test_the_users_app_is_served_with_its_middleware_and_lifespan_beside_the_api(
    module_database_url: str, tmp_path: Path
) -> None:
    with server_process(module_database_url, config=config(tmp_path, {})) as server:
        custom = httpx.get(server.url + "/custom/hello", timeout=30)
        assert custom.json() == {"hello": "from the user's app", "started": True, "user": None}
        assert custom.headers["x-custom-mw"] == "1"
        # Its routes come first: /info is the user's; /ok stays the server's.
        assert httpx.get(server.url + "/info", timeout=30).json() == {"shadowed": "info"}
        assert httpx.get(server.url + "/ok", timeout=30).json()["ok"] is True
        # The API is all there, through the user's middleware too.
        created = httpx.post(server.url + "/threads", json={}, timeout=30)
        assert created.status_code == 200
        assert created.headers["x-custom-mw"] == "1"
        # And its errors are the API's.
        missing = httpx.get(server.url + "/threads/not-a-uuid", timeout=30)
        assert missing.status_code == 422 and missing.json()["detail"].startswith("thread_id")


@pytest.mark.parametrize("custom_auth", [False, True])
def test_the_users_routes_are_authenticated_only_when_asked(
    module_database_url: str, tmp_path: Path, custom_auth: bool
) -> None:
    path = config(tmp_path, {"enable_custom_route_auth": custom_auth}, auth=AUTH)
    with server_process(module_database_url, config=path) as server:
        anonymous = httpx.get(server.url + "/custom/hello", timeout=30)
        token = {"Authorization": "Bearer token-ann"}
        signed = httpx.get(server.url + "/custom/hello", headers=token, timeout=30)
        # The API's routes are authenticated either way.
        assert httpx.post(server.url + "/threads", json={}, timeout=30).status_code == 401
    if custom_auth:
        assert anonymous.status_code == 401
        assert signed.json()["user"] == "ann"
    else:
        assert anonymous.status_code == 200
        assert anonymous.json()["user"] is None


def test_disabled_route_groups_are_not_served(module_database_url: str, tmp_path: Path) -> None:
    http = {"disable_store": True, "disable_assistants": True, "disable_meta": True}
    with server_process(module_database_url, config=config(tmp_path, http)) as server:
        store = httpx.get(server.url + "/store/items", params={"namespace": "a", "key": "k"})
        assistants = httpx.post(server.url + "/assistants/search", json={})
        threads = httpx.post(server.url + "/threads", json={})
        openapi = httpx.get(server.url + "/openapi.json")
    assert store.status_code == 404
    assert assistants.status_code == 404
    assert openapi.status_code == 404
    assert threads.status_code == 200


async def test_configurable_headers_reach_the_graph(
    module_database_url: str, tmp_path: Path
) -> None:
    http = {
        "configurable_headers": {
            "includes": ["x-team", "x-trace-*", "x-api-*"],
            "excludes": ["x-trace-secret"],
        }
    }
    with server_process(module_database_url, config=config(tmp_path, http)) as server:
        headers = {
            "x-team": "blue",
            "x-trace-id": "t-1",
            "x-trace-secret": "no",
            "x-other": "no",
            "x-api-key": "never",
        }
        # Raw HTTP: the SDK refuses to send x-api-key as a custom header.
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            answer = await http.post(
                "/runs/wait", json={"assistant_id": "show", "input": {}}, headers=headers
            )
    # Matched and not excluded; a credential never, whatever the patterns.
    assert answer.json()["seen"] == {"x-team": "blue", "x-trace-id": "t-1"}


async def test_without_configurable_headers_no_header_reaches_the_graph(
    module_database_url: str, tmp_path: Path
) -> None:
    with server_process(module_database_url, config=config(tmp_path, {})) as server:
        client = get_client(url=server.url, headers={"x-team": "blue"})
        try:
            result = await client.runs.wait(None, "show", input={})
        finally:
            await client.http.client.aclose()
    assert result["seen"] == {}


async def test_mount_prefix_serves_everything_under_it_and_ok_at_the_root(
    module_database_url: str, tmp_path: Path
) -> None:
    path = write_config(tmp_path, http={"mount_prefix": "/api/v1"})
    with server_process(module_database_url, config=path) as server:
        assert httpx.get(server.url + "/ok", timeout=30).json()["ok"] is True
        assert httpx.get(server.url + "/api/v1/ok", timeout=30).json()["ok"] is True
        assert httpx.post(server.url + "/threads", json={}, timeout=30).status_code == 404
        client = get_client(url=server.url + "/api/v1")
        try:
            thread = await client.threads.create()
            tid = thread["thread_id"]
            assert await client.runs.wait(tid, "echo", input={"count": 1}) == {"count": 2}
            # A background run, then its stream joined through the paths
            # the server hands out (Content-Location, Location).
            run = await client.runs.create(tid, "echo", input={"count": 5}, stream_resumable=True)
            await client.runs.join(tid, run["run_id"])
            parts = [
                p async for p in client.runs.join_stream(tid, run["run_id"], last_event_id="-1")
            ]
            assert parts[0].event == "metadata"
            assert (await client.threads.get_state(tid))["values"] == {"count": 6}
        finally:
            await client.http.client.aclose()


def test_a_malformed_mount_prefix_stops_the_server(
    module_database_url: str, tmp_path: Path
) -> None:
    log = refused_start(module_database_url, config(tmp_path, {"mount_prefix": "api/"}))
    assert "http.mount_prefix must start with /" in log


@pytest.mark.parametrize("order", ["middleware_first", "auth_first"])
def test_middleware_order_puts_the_users_middleware_outside_or_inside_auth(
    module_database_url: str, tmp_path: Path, order: str
) -> None:
    path = config(tmp_path, {"middleware_order": order}, auth=AUTH)
    with server_process(module_database_url, config=path) as server:
        refused = httpx.post(server.url + "/threads", json={}, timeout=30)
        token = {"Authorization": "Bearer token-ann"}
        allowed = httpx.post(server.url + "/threads", json={}, headers=token, timeout=30)
    assert refused.status_code == 401 and allowed.status_code == 200
    assert allowed.headers["x-custom-mw"] == "1"
    # Refused by auth: seen by the user's middleware only when it is outside.
    assert ("x-custom-mw" in refused.headers) == (order == "middleware_first")

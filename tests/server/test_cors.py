"""CORS from langgraph.json's ``http.cors``, as browsers meet it: preflights
and the headers on answers, read over real HTTP from real servers. (The
browser itself is in tests/browser/.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.procs import REPO, write_config
from tests.support.server import ServerProcess, refused_start, server_process

GRAPHS = REPO / "tests" / "graphs"
AUTH_DIR = GRAPHS / "auth"
PAGE = "http://page.example"


def preflight(url: str, path: str = "/threads", origin: str = PAGE, **extra: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key",
        **extra,
    }
    return httpx.options(url + path, headers=headers, timeout=30)


def test_by_default_any_origin_may_call_without_credentials(server: ServerProcess) -> None:
    answer = preflight(server.url)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-headers"] == "content-type,x-api-key"
    assert "access-control-allow-credentials" not in answer.headers
    # The answer itself: the JS SDK reads a new run's id from Content-Location
    # and a search's pages from x-pagination-*, so those must be exposed.
    created = httpx.post(
        server.url + "/runs",
        json={"assistant_id": "echo", "input": {"count": 1}},
        headers={"Origin": PAGE},
        timeout=30,
    )
    assert created.status_code == 200
    assert created.headers["access-control-allow-origin"] == "*"
    exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"content-location", "x-pagination-total", "x-pagination-next"}
    assert "content-location" in created.headers


def test_serve_answers_private_network_preflights(server: ServerProcess) -> None:
    answer = preflight(server.url, **{"Access-Control-Request-Private-Network": "true"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-private-network"] == "true"


def test_server_does_not_open_the_private_network(module_database_url: str) -> None:
    with server_process(module_database_url, command="server") as http_only:
        assert preflight(http_only.url).status_code == 200  # CORS as serve's
        asks = {"Access-Control-Request-Private-Network": "true"}
        answer = preflight(http_only.url, **asks)
    assert answer.status_code == 400
    assert "access-control-allow-private-network" not in answer.headers


@pytest.fixture(scope="module")
def configured(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cors = {
        "allow_origins": [PAGE],
        "allow_origin_regex": r"https://.*\.studio\.example",
        "allow_methods": ["GET", "POST"],
        "allow_headers": ["content-type", "authorization"],
        "allow_credentials": True,
        "expose_headers": ["x-pagination-total"],
        "max_age": 42,
    }
    config = write_config(
        tmp_path_factory.mktemp("cors"),
        http={"cors": cors},
        auth={"path": str(AUTH_DIR / "auth.py") + ":auth"},
    )
    with server_process(module_database_url, config=config) as proc:
        yield proc.url


def test_configured_origins_methods_headers_and_max_age(configured: str) -> None:
    answer = preflight(configured, **{"Access-Control-Request-Headers": "authorization"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == PAGE
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert answer.headers["access-control-allow-methods"] == "GET, POST"
    assert answer.headers["access-control-max-age"] == "42"
    plain = {"Access-Control-Request-Headers": "content-type"}
    by_regex = preflight(configured, origin="https://team.studio.example", **plain)
    assert by_regex.status_code == 200
    assert by_regex.headers["access-control-allow-origin"] == "https://team.studio.example"
    # Refused: an origin not listed, a method not allowed, a header not allowed.
    assert preflight(configured, origin="http://other.example", **plain).status_code == 400
    delete = {"Access-Control-Request-Method": "DELETE", **plain}
    not_allowed = preflight(configured, **delete)
    assert not_allowed.status_code == 400
    odd_header = preflight(configured, **{"Access-Control-Request-Headers": "x-odd"})
    assert odd_header.status_code == 400
    token = {"Authorization": "Bearer token-ann"}
    other = httpx.get(configured + "/ok", headers={"Origin": "http://other.example", **token})
    assert "access-control-allow-origin" not in other.headers
    listed = httpx.post(
        configured + "/threads/search", json={}, headers={"Origin": PAGE, **token}, timeout=30
    )
    assert listed.status_code == 200
    assert listed.headers["access-control-expose-headers"] == "x-pagination-total"


def test_cors_is_answered_before_authentication(configured: str) -> None:
    """A preflight carries no credentials, and a refusal must be readable by
    the page: CORS wraps authentication."""
    plain = {"Access-Control-Request-Headers": "content-type"}
    assert preflight(configured, **plain).status_code == 200
    refused = httpx.post(configured + "/threads", json={}, headers={"Origin": PAGE}, timeout=30)
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == PAGE


@pytest.mark.parametrize(
    ("cors", "named"),
    [
        ({"max_age": "soon"}, "http.cors.max_age must be an integer"),
        ({"allow_origins": "*"}, "http.cors.allow_origins must be a list"),
        ({"allow_origin_regex": "("}, "http.cors.allow_origin_regex"),
        ({"allow_everything": True}, "http.cors.allow_everything is not an option"),
        ("*", "http.cors must be an object"),
    ],
)
def test_a_wrong_cors_section_stops_the_server_naming_it(
    module_database_url: str, tmp_path: Path, cors: Any, named: str
) -> None:
    log = refused_start(module_database_url, write_config(tmp_path, http={"cors": cors}))
    assert named in log

"""``/dashboard`` over HTTP: the page and its files, the JSON it polls, what
bad input answers, and the authentication an Auth puts in front of it all.
(The page in a browser: tests/browser/test_dashboard.py. Another user's
runs: the authorization walk, tests/server/test_authorization_walk.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from server.dashboard.chart import nice_ceiling
from tests.support.procs import REPO
from tests.support.server import ServerProcess, server_process

AUTH_CONFIG = REPO / "tests" / "graphs" / "auth" / "langgraph.json"
PATHS = (
    "/dashboard",
    "/dashboard/static/app.js",
    "/dashboard/static/style.css",
    "/dashboard/api/overview",
    f"/dashboard/api/runs/{uuid.uuid4()}",
)


@pytest.fixture(scope="module")
def auth_server(module_database_url: str) -> Iterator[ServerProcess]:
    with server_process(module_database_url, config=AUTH_CONFIG) as proc:
        yield proc


def test_the_page_and_its_files_are_served_from_the_package(server: ServerProcess) -> None:
    page = httpx.get(server.url + "/dashboard", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="dashboard/static/app.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(server.url + "/dashboard/static/app.js", timeout=30)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "dashboard/api/" in script.text
    for name in ("nope.js", "..%2Fchart.py", "index.html"):
        assert httpx.get(f"{server.url}/dashboard/static/{name}", timeout=30).status_code == 404


def test_the_overview_answers_every_window_with_a_chart(server: ServerProcess) -> None:
    for window, buckets in (("5m", 60), ("15m", 60), ("1h", 60), ("6h", 60), ("24h", 60)):
        answer = httpx.get(
            server.url + "/dashboard/api/overview", params={"window": window, "tz": -300}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["window"]["name"] == window
        assert len(body["series"]) == buckets
        assert body["chart_svg"].startswith("<svg") and body["chart_svg"].endswith("</svg>")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/dashboard/api/overview?window=2h", "window"),
        ("/dashboard/api/overview?tz=100000", "tz"),
        ("/dashboard/api/overview?tz=east", "tz"),
        ("/dashboard/api/runs/not-a-uuid", "run_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(server: ServerProcess, path: str, field: str) -> None:
    answer = httpx.get(server.url + path, timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}: ")


def test_an_unknown_run_is_404(server: ServerProcess) -> None:
    missing = uuid.uuid4()
    answer = httpx.get(f"{server.url}/dashboard/api/runs/{missing}", timeout=30)
    assert answer.status_code == 404
    assert str(missing) in answer.json()["detail"]


def test_with_an_auth_nothing_of_the_dashboard_is_served_without_credentials(
    auth_server: ServerProcess,
) -> None:
    for path in PATHS:
        refused = httpx.get(auth_server.url + path, timeout=30)
        assert refused.status_code == 401, (path, refused.text)
        assert "pgqueue" not in refused.text
        wrong = httpx.get(auth_server.url + path, headers={"Authorization": "Basic x"}, timeout=30)
        assert wrong.status_code == 401, (path, wrong.text)
    bearer = {"Authorization": "Bearer token-alice"}
    for path in PATHS[:-1]:
        assert httpx.get(auth_server.url + path, headers=bearer, timeout=30).status_code == 200
    # Authenticated, the unknown run is as missing as for anyone.
    assert httpx.get(auth_server.url + PATHS[-1], headers=bearer, timeout=30).status_code == 404


def test_the_chart_scale_rounds_up_to_one_two_or_five() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 1.5, 3, 7, 11, 480, 5000)] == [
        1,
        1,
        2,
        5,
        10,
        20,
        500,
        5000,
    ]

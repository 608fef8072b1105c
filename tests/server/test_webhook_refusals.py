"""A webhook aimed inward is refused when the run (or cron) is submitted,
by every route that takes one, with a 422 naming the field, and nothing is
stored; and a langgraph.json whose webhooks section won't do stops the
server and the worker at start, naming the key. The server here runs
tests/graphs/langgraph.json, which has no webhooks section: the defaults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.procs import run_cli
from tests.support.server import ServerProcess, refused_start
from tests.support.webhooks import graphs_config

INWARD = [
    "http://127.0.0.1:9/hook",
    "http://[::1]:9/hook",
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:9/hook",  # a name that resolves to loopback
    "http://user:pass@8.8.8.8/hook",  # credentials in the URL
]
RUN = {"assistant_id": "echo", "input": {"count": 1}}
YEARLY = "0 0 1 1 *"

# (method, path, body): {thread} and {cron} are filled in; "URL" is the webhook.
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/threads/{thread}/runs", RUN),
    ("POST", "/threads/{thread}/runs/wait", RUN),
    ("POST", "/threads/{thread}/runs/stream", RUN),
    ("POST", "/runs", RUN),
    ("POST", "/runs/wait", RUN),
    ("POST", "/runs/stream", RUN),
    ("POST", "/runs/batch", [RUN]),
    ("POST", "/runs/crons", {**RUN, "schedule": YEARLY}),
    ("POST", "/threads/{thread}/runs/crons", {**RUN, "schedule": YEARLY}),
    ("PATCH", "/runs/crons/{cron}", {}),
]


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("url", INWARD)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_refused_at_submit_naming_the_field(
    http: httpx.AsyncClient, db: asyncpg.Pool, method: str, path: str, body: Any, url: str
) -> None:
    thread = (await http.post("/threads", json={})).json()["thread_id"]
    cron = (await http.post("/runs/crons", json={**RUN, "schedule": YEARLY})).json()["cron_id"]
    if isinstance(body, list):
        body, field = [{**item, "webhook": url} for item in body], "body.0.webhook"
    else:
        body, field = {**body, "webhook": url}, "webhook"
    answer = await http.request(
        method, path.format(thread=thread, cron=cron), json=body, headers={"accept": "*/*"}
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["detail"].startswith(f"{field}: "), error
    assert error["errors"][0]["field"] == field
    # Nothing names it: no run, and no cron (the PATCH left its cron as it was).
    runs = await db.fetchval("SELECT count(*) FROM runs WHERE kwargs->>'webhook' = $1", url)
    crons = await db.fetchval("SELECT count(*) FROM crons WHERE payload->>'webhook' = $1", url)
    assert (runs, crons) == (0, 0)


async def test_the_answer_says_what_would_allow_it(http: httpx.AsyncClient) -> None:
    answer = await http.post("/runs", json={**RUN, "webhook": "http://127.0.0.1:9/"})
    assert "webhooks.url.disable_loopback: false" in answer.json()["detail"]
    answer = await http.post("/runs", json={**RUN, "webhook": "http://10.1.2.3/"})
    assert "webhooks.url.disable_private_ips: false" in answer.json()["detail"]


# -- a bad section stops the process ---------------------------------------------

BAD = [
    ({"url": {"allowed_domains": ["*corp.com"]}}, "webhooks.url.allowed_domains[0]"),
    ({"url": {"disable_loopback": "no"}}, "webhooks.url.disable_loopback"),
    ({"headers": {"X-Token": "${{ env.HOME }}"}}, "$HOME does not start with env_prefix"),
    ({"headers": {"X-Token": "${{ env.LG_WEBHOOK_UNSET }}"}}, "$LG_WEBHOOK_UNSET is not set"),
]


@pytest.mark.parametrize(("section", "message"), BAD)
def test_a_bad_section_stops_the_server(
    tmp_path: Path, module_database_url: str, section: Any, message: str
) -> None:
    """``pgqueue server`` sends no webhook, and still refuses the file its
    workers would."""
    config = graphs_config(tmp_path, section)
    log = refused_start(module_database_url, config, command="server")
    assert f"{config}: " in log and message in log, log


def test_a_bad_section_stops_the_worker(tmp_path: Path, module_database_url: str) -> None:
    section, message = BAD[0]
    config = graphs_config(tmp_path, section)
    ended = run_cli(module_database_url, "worker", "--config", str(config))
    assert ended.returncode != 0
    assert message in ended.stderr and "Traceback" not in ended.stderr, ended.stderr

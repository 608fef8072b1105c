"""HTTP requests in /metrics (server/http_metrics.py): by route template,
so paths a scanner makes up add no series."""

from __future__ import annotations

import uuid

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.support.scrape import scrape
from tests.support.server import ServerProcess


def test_requests_are_counted_by_route_template_not_path(server: ServerProcess) -> None:
    made_up = [f"/no/such/{uuid.uuid4()}" for _ in range(3)]
    threads = [f"/threads/{uuid.uuid4()}" for _ in range(3)]
    before = scrape(server.url)
    for path in made_up + threads:
        assert httpx.get(server.url + path, timeout=30).status_code == 404
    after = scrape(server.url)
    name = "lg_api_http_requests_total"

    def added(**labels: str) -> float:
        return after.sum(name, **labels) - before.sum(name, **labels)

    assert added(method="GET", route="unmatched", status="404") == 3
    assert added(method="GET", route="/threads/{thread_id}", status="404") == 3
    label_values = {value for (_, labels) in after.values for _, value in labels}
    ids = [path.rsplit("/", 1)[1] for path in made_up + threads]
    assert not [value for value in label_values if any(i in value for i in ids)]
    assert (
        after.sum("lg_api_http_requests_latency_seconds_count", route="/threads/{thread_id}") >= 3
    )


def test_metrics_answers_4xx_for_what_it_does_not_serve(server: ServerProcess) -> None:
    json_format = httpx.get(server.url + "/metrics", params={"format": "json"}, timeout=30)
    assert json_format.status_code == 422 and json_format.json()["detail"].startswith("format")
    assert httpx.post(server.url + "/metrics", timeout=30).status_code == 405


async def test_serve_counts_its_in_process_workers_runs(
    server: ServerProcess, client: LangGraphClient
) -> None:
    before = scrape(server.url)
    thread = await client.threads.create()
    result = await client.runs.wait(thread["thread_id"], "three_steps", input={"log": []})
    assert result == {"log": ["one", "two", "three"]}
    after = scrape(server.url)
    done = "pgqueue_run_duration_seconds_count"
    assert after.sum(done, status="success") - before.sum(done, status="success") == 1
    assert after.sum("pgqueue_runs_claimed_total") - before.sum("pgqueue_runs_claimed_total") == 1
    # The worker's own pool and the executor's event pool, beside the HTTP one.
    for role in ("http", "worker", "events"):
        assert after.get("lg_api_pg_pool_max", pool=role) >= 1
    assert after.get("pgqueue_runs", status="success") >= 1

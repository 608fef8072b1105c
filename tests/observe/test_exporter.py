"""The scrape's text in prometheus_client's multiprocess mode, and the
worker's small metrics server on bad requests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pgqueue.observe.exporter import MetricsServer
from tests.support.procs import REPO
from tests.support.server import free_port

COUNT = "from pgqueue.observe import metrics; metrics.RETRIES.inc(2)"
SCRAPE = """
import asyncio, sys
from pgqueue.db import pools
from pgqueue.observe import exporter

async def main() -> None:
    exporter.use_multiprocess_dir(sys.argv[2])
    pool = await pools.create_pool(sys.argv[1])
    sys.stdout.write((await exporter.exposition(pool)).decode())
    await pools.close_pool(pool)

asyncio.run(main())
"""


def test_processes_sharing_a_multiprocess_dir_add_up(database_url: str, tmp_path: Path) -> None:
    # As `serve --workers N` runs: each process counts into the directory;
    # a scrape answered by any one of them reports the sum.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT], env=env, cwd=REPO, check=True, timeout=60)
    scraped = subprocess.run(
        [sys.executable, "-c", SCRAPE, database_url, str(tmp_path)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scraped.returncode == 0, scraped.stderr
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.stdout)
        for s in family.samples
    }
    assert samples[("pgqueue_run_retries_total", ())] == 4
    # The database's gauges come once, from the answering process.
    assert samples[("pgqueue_database_up", ())] == 1
    assert samples[("pgqueue_runs", (("status", "pending"),))] == 0


async def test_the_worker_metrics_server_answers_only_what_it_serves(database_url: str) -> None:
    server = MetricsServer(database_url, "127.0.0.1", 0, lambda: {"running": 1, "slots": 2})
    port = await server.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await http.get("/nothing")).status_code == 404
            assert (await http.post("/metrics")).status_code == 405
            ok = await http.get("/ok")
            assert ok.json() == {
                "ok": True,
                "database": {"ok": True},
                "workers": {"running": 1, "slots": 2},
            }
            scraped = await http.get("/metrics", params={"format": "prometheus"})
            assert scraped.status_code == 200 and "pgqueue_database_up 1.0" in scraped.text
        # A request line that is no request: 400, not a dropped server.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"nonsense\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
    finally:
        await server.stop()


async def test_a_database_that_does_not_answer_is_reported_not_fatal() -> None:
    # Nothing listens there: the scrape still answers, with the process's
    # own counters and pgqueue_database_up 0; /ok says 503.
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    server = MetricsServer(nobody, "127.0.0.1", 0, None)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            scraped = await http.get("/metrics")
            assert scraped.status_code == 200
            assert "pgqueue_database_up 0.0" in scraped.text
            assert "pgqueue_claims_total" in scraped.text and "pgqueue_runs{" not in scraped.text
            ok = await http.get("/ok")
            assert ok.status_code == 503
            assert ok.json() == {"ok": False, "database": {"ok": False}}
    finally:
        await server.stop()

"""What a thread TTL saves on disk (issue 15): the same 10,000 runs, each on
its own thread, into two databases, one with langgraph.json's
checkpointer.ttl (delete after 1 minute) and one without; then, once the
TTL has run out and the server's pruner has swept, both are vacuumed and
measured (pg_database_size: the database's directory, as du sees it, and
the biggest tables).

    python bench/ttl_footprint.py               # 10,000 runs, TTL 1 minute
    python bench/ttl_footprint.py --runs 1000   # a quicker look

Each database is served by `pgqueue serve` (this venv's) on a free port,
driven by langgraph-sdk clients: threads.create, then runs.wait, --clients
at a time. The TTL is waited out, not faked: the sweep runs every
--prune-interval seconds once it has.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from langgraph_sdk import get_client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import benchdb  # noqa: E402

from pgqueue.db import migrate  # noqa: E402

GRAPH = HERE / "http" / "graph" / "graph.py"
TABLES = ("threads", "runs", "run_events", "checkpoints", "checkpoint_blobs", "checkpoint_writes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(directory: Path, ttl_minutes: float | None) -> Path:
    raw: dict[str, Any] = {"graphs": {"agent": f"{GRAPH}:graph"}}
    if ttl_minutes is not None:
        raw["checkpointer"] = {"ttl": {"strategy": "delete", "default_ttl": ttl_minutes}}
    path = directory / "langgraph.json"
    path.write_text(json.dumps(raw))
    return path


async def drive(url: str, runs: int, clients: int) -> float:
    """``runs`` runs, each on a new thread, ``clients`` at a time; seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(runs):
        queue.put_nowait(i)

    async def client_loop() -> None:
        client = get_client(url=url, api_key=None)
        try:
            while not queue.empty():
                queue.get_nowait()
                thread = await client.threads.create()
                await client.runs.wait(thread["thread_id"], "agent", input={"n": 0})
        finally:
            await client.http.client.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    return time.perf_counter() - t0


async def sizes(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM")
        tables = {
            t: {
                "rows": await conn.fetchval(f"SELECT count(*) FROM {t}"),
                "bytes": await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t),
            }
            for t in TABLES
        }
        return {
            "database_bytes": await conn.fetchval("SELECT pg_database_size(current_database())"),
            "tables": tables,
        }
    finally:
        await conn.close()


async def variant(admin: str, ttl: float | None, a: Any) -> dict[str, Any]:
    async with benchdb.fresh_database(admin, "ttl") as dsn:
        migrate.upgrade(dsn)
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            pgqueue = Path(sys.executable).with_name("pgqueue")
            args = [
                str(pgqueue),
                "serve",
                "--config",
                str(config(Path(tmp), ttl)),
                "--port",
                str(port),
                "--concurrency",
                "10",
                "--prune-interval",
                str(a.prune_interval),
            ]
            log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115
            env = {**os.environ, "DATABASE_URL": dsn}
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
            url = f"http://127.0.0.1:{port}"
            try:
                async with httpx.AsyncClient() as http:
                    for _ in range(600):
                        try:
                            if (await http.get(url + "/ok")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.1)
                seconds = await drive(url, a.runs, a.clients)
                swept_after = None
                if ttl is not None:
                    # Waited out: the last thread expires a TTL after its last
                    # update; the pruner's next pass takes it.
                    conn = await asyncpg.connect(dsn)
                    t0 = time.perf_counter()
                    while await conn.fetchval("SELECT count(*) FROM threads"):
                        await asyncio.sleep(1)
                    swept_after = round(time.perf_counter() - t0, 1)
                    await conn.close()
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
        result = await sizes(dsn)
    return {
        "ttl_minutes": ttl,
        "runs": a.runs,
        "drive_s": round(seconds, 1),
        "swept_after_drive_s": swept_after,
        **result,
    }


async def main() -> None:
    ap = benchdb.arg_parser(__doc__)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--ttl-minutes", type=float, default=1.0)
    ap.add_argument("--prune-interval", type=float, default=10.0)
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    results = [await variant(a.dsn, None, a), await variant(a.dsn, a.ttl_minutes, a)]
    text = json.dumps(results, indent=2)
    print(text)
    if a.output:
        a.output.write_text(text)
    without, with_ttl = (r["database_bytes"] for r in results)
    print(
        f"database after {a.runs} runs: {without / 2**20:.1f} MiB without a TTL, "
        f"{with_ttl / 2**20:.1f} MiB with a {a.ttl_minutes:g}-minute TTL, swept"
    )


if __name__ == "__main__":
    asyncio.run(main())

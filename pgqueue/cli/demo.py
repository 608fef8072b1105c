"""``pgqueue demo``: the queue end to end in a few seconds, on whatever
database the CLI resolved (the embedded one by default)."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg

from pgqueue.cli.database import migrate_and_say, resolve_database_url
from pgqueue.core import queue
from pgqueue.core.queue import ClaimedRun, NewRun
from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.worker.config import WorkerConfig
from pgqueue.worker.worker import Worker


async def square(run: ClaimedRun) -> dict[str, int]:
    await asyncio.sleep(0.01)
    n = int(run.kwargs["n"])
    return {"n": n, "square": n * n}


async def run_demo(url: str, runs: int) -> int:
    worker = Worker(url, square, WorkerConfig(concurrency=5))
    worker_task = asyncio.create_task(worker.run())
    await worker.started.wait()
    threads = [uuid7() for _ in range(3)]
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        submitted = await queue.submit(
            conn, [NewRun(thread_id=threads[i % 3], kwargs={"n": i}) for i in range(runs)]
        )
        ids = [s.run_id for s in submitted]
        # Polling the table is the point here: it is what a user would watch.
        while await conn.fetchval(queries.count_live_runs, ids):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        print(f"{runs} runs on {len(threads)} threads finished in {elapsed:.2f}s")
        print("\nSELECT status, runs FROM pgqueue_queue_depth;")
        for row in await conn.fetch(queries.queue_depth):
            print(f"  {row['status']:<12} {row['runs']}")
        last = await queue.get_run(conn, ids[-1])
        assert last is not None
        print(f"\nlast run {last['run_id']}: {last['status']}, output {last['output']}")
    finally:
        await conn.close()
        worker.stop()
        await worker_task
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    url = resolve_database_url(args)
    migrate_and_say(url)
    return asyncio.run(run_demo(url, args.runs))


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", parents=parents, help="submit and run a few no-op runs, print the queue"
    )
    p.add_argument("--runs", type=int, default=20)
    p.set_defaults(func=cmd_demo)

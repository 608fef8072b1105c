"""Benchmark driver for pgqueue, with the same CLI and timing rules as the
peer drivers beside it (workers connect first; the clock starts at "go").

Usage:
    python bench/peers/pgqueue_peer.py drain   --dsn DSN --jobs N --workers K --batch B
    python bench/peers/pgqueue_peer.py latency --dsn DSN --samples S

Prints one JSON object as the last line of stdout. The caller hands us a
fresh, empty database; we apply pgqueue's migrations to it.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.synchronize import Event
from typing import Any

import asyncpg
from harness import CTX, drain_result, main, probe_latency, start_workers, stop_workers

from pgqueue.core import queue
from pgqueue.core.queue import ClaimedRun, NewRun
from pgqueue.db import migrate
from pgqueue.worker.worker import Worker, WorkerConfig

PEER = "pgqueue"


async def _worker(dsn: str, batch: int, ready: Event, go: Event, stop: Event, out: Any) -> None:
    async def handler(run: ClaimedRun) -> None:
        t0 = run.kwargs.get("t0")
        if t0 is not None:
            out.put(time.time() - float(t0))
        return None

    # concurrency = batch: a worker claims up to `batch` runs per statement,
    # as pgqueuer's batch_size does. Poll interval left at its default (5 s):
    # it is only the fallback; wake-ups come from NOTIFY.
    worker = Worker(dsn, handler, WorkerConfig(concurrency=batch))
    loop = asyncio.get_running_loop()
    ready.set()
    await loop.run_in_executor(None, go.wait)
    task = asyncio.create_task(worker.run())
    await loop.run_in_executor(None, stop.wait)
    worker.stop()
    await task


def worker_main(dsn: str, batch: int, ready: Event, go: Event, stop: Event, out: Any) -> None:
    asyncio.run(_worker(dsn, batch, ready, go, stop, out))


async def drain(dsn: str, jobs: int, workers: int, batch: int) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    for start in range(0, jobs, 5000):  # batch submit; not timed
        await queue.submit(conn, [NewRun() for _ in range(min(5000, jobs - start))], wake=False)
    # Fresh tables have no statistics; every peer's driver analyzes after its
    # bulk load (not timed) so the planner starts from the same footing.
    await conn.execute("ANALYZE runs")
    procs, go, stop = start_workers(worker_main, dsn, workers, batch, CTX.Queue())
    t0 = time.perf_counter()
    go.set()
    while await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM runs WHERE status IN ('pending', 'running'))"
    ):
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - t0
    stop_workers(procs, stop)
    done = await conn.fetchval("SELECT count(*) FROM runs WHERE status = 'success'")
    await conn.close()
    assert done == jobs, f"{done} of {jobs} runs succeeded"
    return drain_result(PEER, jobs, workers, batch, seconds)


async def latency(dsn: str, samples: int, warmup: int = 3) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)

    async def submit(t0: float) -> None:
        await queue.submit(conn, [NewRun(kwargs={"t0": t0})])

    result = await probe_latency(PEER, worker_main, dsn, samples, warmup, submit, batch=1)
    await conn.close()
    return result


if __name__ == "__main__":
    main(__doc__, drain, latency)

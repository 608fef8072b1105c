"""Benchmark driver for the pgqueuer peer (https://github.com/janbjorge/pgqueuer).

Usage:
    python bench/peers/pgqueuer_peer.py drain   --dsn DSN --jobs N --workers K --batch B
    python bench/peers/pgqueuer_peer.py latency --dsn DSN --samples S

Each subcommand prints one JSON object as the last line of stdout. The caller
hands us a fresh, empty database; we install pgqueuer's schema into it.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.synchronize import Event
from typing import Any

import asyncpg
from harness import CTX, drain_result, main, probe_latency, start_workers, stop_workers
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

PEER = "pgqueuer"


async def _worker(
    dsn: str, batch: int | None, ready: Event, go: Event, stop: Event, out: Any
) -> None:
    # One consumer = one QueueManager (the job-consuming half of the PgQueuer
    # app in pgqueuer's docs) on one asyncpg connection. The other half, the
    # SchedulerManager, runs cron schedules; there are none here.
    conn = await asyncpg.connect(dsn)
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @qm.entrypoint("probe")
    async def probe(job: Job) -> None:
        assert job.payload is not None
        out.put(time.time() - float(job.payload.decode()))

    loop = asyncio.get_running_loop()
    ready.set()
    # Imports and connect are done; only start consuming when the parent says
    # so, so the drain clock measures consumption, not interpreter start-up.
    await loop.run_in_executor(None, go.wait)

    async def stopper() -> None:
        await loop.run_in_executor(None, stop.wait)
        qm.shutdown.set()  # graceful: qm.run flushes its status buffers and returns

    stop_task = asyncio.create_task(stopper())
    # dequeue_timeout is left at its default (30 s): it is only the fallback
    # poll; wake-ups come from pgqueuer's LISTEN/NOTIFY trigger. batch=None
    # keeps pgqueuer's default batch_size (10).
    await (qm.run(batch_size=batch) if batch else qm.run())
    await stop_task
    if not conn.is_closed():
        await conn.close()


def worker_main(
    dsn: str, batch: int | None, ready: Event, go: Event, stop: Event, out: Any
) -> None:
    asyncio.run(_worker(dsn, batch, ready, go, stop, out))


async def install(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await Queries(AsyncpgDriver(conn)).install()
    return conn


async def drain(dsn: str, jobs: int, workers: int, batch: int) -> dict[str, Any]:
    conn = await install(dsn)
    # One multi-row INSERT (pgqueuer's list form of enqueue); not timed.
    await Queries(AsyncpgDriver(conn)).enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)
    # Give the planner statistics for the freshly bulk-loaded table, as
    # autovacuum would on a live system; without them a fresh database may get
    # a plan that scans every queued row per dequeue. Done for every peer.
    await conn.execute("ANALYZE")
    procs, go, stop = start_workers(worker_main, dsn, workers, batch, CTX.Queue())
    t0 = time.perf_counter()
    go.set()
    # pgqueuer deletes a job's row from the queue table once it is done (moving
    # it to pgqueuer_log), so "any row left" means "not finished". EXISTS stops
    # at the first live row: one cheap query per 20 ms, nothing per job.
    while await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pgqueuer)"):
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - t0
    stop_workers(procs, stop)
    await conn.close()
    return drain_result(PEER, jobs, workers, batch, seconds)


async def latency(dsn: str, samples: int, warmup: int = 3) -> dict[str, Any]:
    conn = await install(dsn)
    queries = Queries(AsyncpgDriver(conn))

    async def submit(t0: float) -> None:
        await queries.enqueue("probe", repr(t0).encode())

    # One worker with pgqueuer's defaults (batch_size 10; on an idle queue it
    # fetches the one job it was woken for either way).
    result = await probe_latency(PEER, worker_main, dsn, samples, warmup, submit)
    await conn.close()
    return result


if __name__ == "__main__":
    main(__doc__, drain, latency)

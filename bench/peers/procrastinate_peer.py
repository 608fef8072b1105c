"""Benchmark driver for the procrastinate peer (https://github.com/procrastinate-org/procrastinate).

Usage:
    python bench/peers/procrastinate_peer.py drain   --dsn DSN --jobs N --workers K --batch B
    python bench/peers/procrastinate_peer.py latency --dsn DSN --samples S

Each subcommand prints one JSON object as the last line of stdout. The caller
hands us a fresh, empty database; we apply procrastinate's schema to it.

"batch" B maps to the worker's ``concurrency``: procrastinate has no batched
fetch (each fetch claims one job), so the closest knob to "jobs in flight per
consumer" is how many jobs one worker runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from multiprocessing.synchronize import Event
from typing import Any

import procrastinate
import psycopg
from harness import CTX, drain_result, main, probe_latency, start_workers, stop_workers

# procrastinate warns when the App is built in __main__ because tasks are then
# named after "__main__"; ours have explicit names, so the warning is noise.
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)

PEER = "procrastinate"


def make_app(dsn: str, out: Any = None) -> procrastinate.App:
    # The connector's psycopg pool keeps its defaults (min_size=4); LISTEN uses
    # its own separate connection, so the pool is only for fetch/finish queries.
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    @app.task(name="probe")
    async def probe(t0: float) -> None:
        out.put(time.time() - t0)

    return app


async def _worker(
    dsn: str, batch: int | None, ready: Event, go: Event, stop: Event, out: Any
) -> None:
    app = make_app(dsn, out)
    async with app.open_async():
        loop = asyncio.get_running_loop()
        ready.set()
        # Imports and pool are ready; start consuming only when the parent says
        # so, so the drain clock measures consumption, not interpreter start-up.
        await loop.run_in_executor(None, go.wait)
        # Defaults kept: listen_notify=True (wake-up by NOTIFY),
        # fetch_job_polling_interval=5 s (fallback poll only), delete_jobs=never.
        # batch=None keeps the default concurrency (1).
        opts: dict[str, Any] = {"concurrency": batch} if batch else {}
        run = asyncio.create_task(app.run_worker_async(install_signal_handlers=False, **opts))
        await loop.run_in_executor(None, stop.wait)
        # Cancelling run_worker_async is procrastinate's documented graceful stop:
        # it finishes in-flight jobs, unregisters the worker and returns.
        run.cancel()
        try:
            await run
        except asyncio.CancelledError:
            pass


def worker_main(
    dsn: str, batch: int | None, ready: Event, go: Event, stop: Event, out: Any
) -> None:
    asyncio.run(_worker(dsn, batch, ready, go, stop, out))


async def drain(dsn: str, jobs: int, workers: int, batch: int) -> dict[str, Any]:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        # batch_defer is one multi-row INSERT; not timed.
        await app.tasks["noop"].batch_defer_async(*({} for _ in range(jobs)))
        # Give the planner statistics for the freshly bulk-loaded table, as
        # autovacuum would on a live system. Without them the fetch query may
        # sort every 'todo' row per fetch (seen: 4.5 ms at 5k rows vs 0.05 ms).
        await app.connector.execute_query_async("ANALYZE")
    procs, go, stop = start_workers(worker_main, dsn, workers, batch, CTX.Queue())
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        go.set()
        # Finished jobs stay in procrastinate_jobs with status succeeded (the
        # default delete_jobs=never), so "not finished" is todo/doing; a partial
        # index covers exactly those. One EXISTS per 20 ms, nothing per job.
        sql = "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))"
        while (await (await conn.execute(sql)).fetchone()) == (True,):
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - t0
    stop_workers(procs, stop)
    return drain_result(PEER, jobs, workers, batch, seconds)


async def latency(dsn: str, samples: int, warmup: int = 3) -> dict[str, Any]:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        probe = app.tasks["probe"]

        async def submit(t0: float) -> None:
            await probe.defer_async(t0=t0)

        # One worker with procrastinate's defaults (concurrency 1).
        return await probe_latency(PEER, worker_main, dsn, samples, warmup, submit)


if __name__ == "__main__":
    main(__doc__, drain, latency)

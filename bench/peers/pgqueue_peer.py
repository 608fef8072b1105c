"""Benchmark driver for pgqueue, with the same CLI and timing rules as the
peer drivers beside it (workers connect first; the clock starts at "go").

Usage:
    python bench/peers/pgqueue_peer.py drain   --dsn DSN --jobs N --workers K --batch B
    python bench/peers/pgqueue_peer.py latency --dsn DSN --samples S

Prints one JSON object as the last line of stdout. The caller hands us a
fresh, empty database; we apply pgqueue's migrations to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import time
from multiprocessing.synchronize import Event
from typing import Any

import asyncpg

from pgqueue import migrate, queue
from pgqueue.queue import ClaimedRun, NewRun
from pgqueue.worker import Worker, WorkerConfig

PEER = "pgqueue"
CTX = mp.get_context("spawn")


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


def start_workers(dsn: str, count: int, batch: int, out: Any) -> tuple[list[Any], Event, Event]:
    go, stop = CTX.Event(), CTX.Event()
    readies = [CTX.Event() for _ in range(count)]
    procs = [
        CTX.Process(target=worker_main, args=(dsn, batch, r, go, stop, out), daemon=True)
        for r in readies
    ]
    for p in procs:
        p.start()
    for r in readies:
        if not r.wait(60):
            raise RuntimeError("worker did not become ready")
    return procs, go, stop


def stop_workers(procs: list[Any], stop: Event) -> None:
    stop.set()
    for p in procs:
        p.join(30)
        if p.is_alive():
            p.terminate()
            p.join()


async def drain(dsn: str, jobs: int, workers: int, batch: int) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    for start in range(0, jobs, 5000):  # batch submit; not timed
        await queue.submit(conn, [NewRun() for _ in range(min(5000, jobs - start))], wake=False)
    # Fresh tables have no statistics; every peer's driver analyzes after its
    # bulk load (not timed) so the planner starts from the same footing.
    await conn.execute("ANALYZE runs")
    procs, go, stop = start_workers(dsn, workers, batch, CTX.Queue())
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
    return {
        "peer": PEER,
        "jobs": jobs,
        "workers": workers,
        "batch": batch,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(jobs / seconds, 1),
    }


def summarize(deltas_s: list[float]) -> dict[str, float]:
    ms = [d * 1000 for d in deltas_s]
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(q[98], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


async def latency(dsn: str, samples: int, warmup: int = 3) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    out = CTX.Queue()
    procs, go, stop = start_workers(dsn, 1, 1, out)
    go.set()
    await asyncio.sleep(0.5)  # let the worker LISTEN and go idle
    deltas: list[float] = []
    for _ in range(samples + warmup):
        t0 = time.time()
        await queue.submit(conn, [NewRun(kwargs={"t0": t0})])
        deltas.append(out.get(timeout=30))
        await asyncio.sleep(0.02)
    stop_workers(procs, stop)
    await conn.close()
    return {"peer": PEER, "samples": samples, **summarize(deltas[warmup:])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drain")
    d.add_argument("--dsn", required=True)
    d.add_argument("--jobs", type=int, required=True)
    d.add_argument("--workers", type=int, required=True)
    d.add_argument("--batch", type=int, required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--dsn", required=True)
    lat.add_argument("--samples", type=int, required=True)
    a = ap.parse_args()
    if a.cmd == "drain":
        result = asyncio.run(drain(a.dsn, a.jobs, a.workers, a.batch))
    else:
        result = asyncio.run(latency(a.dsn, a.samples))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

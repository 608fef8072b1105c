"""What every peer driver shares: worker processes that connect first and
start on a "go" signal, the latency summary, and the command line.

A driver supplies ``worker_main(dsn, batch, ready, go, stop, out)`` (run in
each worker process) and two coroutines, ``drain(dsn, jobs, workers,
batch)`` and ``latency(dsn, samples)``, each returning one JSON-able dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event
from typing import Any

# Spawn, not fork: the parent holds connections and an event loop, neither
# of which may be shared with a forked child.
CTX = mp.get_context("spawn")

WorkerMain = Callable[[str, Any, Event, Event, Event, Any], None]


def start_workers(
    worker_main: WorkerMain, dsn: str, count: int, batch: Any, out: Any
) -> tuple[list[Any], Event, Event]:
    """Start ``count`` worker processes; return once all are connected and
    waiting for ``go`` (so a drain's clock excludes interpreter start-up)."""
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
        if p.is_alive():  # only if a graceful shutdown hung
            p.terminate()
            p.join()


def drain_result(peer: str, jobs: int, workers: int, batch: int, seconds: float) -> dict[str, Any]:
    return {
        "peer": peer,
        "jobs": jobs,
        "workers": workers,
        "batch": batch,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(jobs / seconds, 1),
    }


async def probe_latency(
    peer: str,
    worker_main: WorkerMain,
    dsn: str,
    samples: int,
    warmup: int,
    submit: Callable[[float], Awaitable[Any]],
    batch: Any = None,
) -> dict[str, Any]:
    """Submit-to-start latency, the same way for every peer: one idle
    worker; each probe job carries its submit time ``t0`` (``submit(t0)``
    enqueues it) and the worker puts back how long it took to start."""
    out = CTX.Queue()
    procs, go, stop = start_workers(worker_main, dsn, 1, batch, out)
    go.set()
    await asyncio.sleep(0.5)  # let the worker issue LISTEN before the first probe
    deltas: list[float] = []
    for _ in range(samples + warmup):
        t0 = time.time()
        await submit(t0)
        deltas.append(out.get(timeout=30))  # blocking is fine: the delta is taken in the worker
        await asyncio.sleep(0.02)  # let the worker go idle (back to waiting on NOTIFY)
    stop_workers(procs, stop)
    return {"peer": peer, "samples": samples, **summarize(deltas[warmup:])}


def summarize(deltas_s: list[float]) -> dict[str, float]:
    ms = [d * 1000 for d in deltas_s]
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(q[98], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def main(
    doc: str | None,
    drain: Callable[[str, int, int, int], Awaitable[dict[str, Any]]],
    latency: Callable[[str, int], Awaitable[dict[str, Any]]],
) -> None:
    ap = argparse.ArgumentParser(description=doc)
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

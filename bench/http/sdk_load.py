"""The load: runs created and joined through langgraph-sdk, as an application
would. Threads are made beforehand and never timed; a timed run is
`runs.create` then `runs.join`, and its output is checked (n + 1)."""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

GRAPH = "agent"


def client(url: str) -> LangGraphClient:
    # api_key=None: never send a key picked up from the environment.
    return get_client(url=url, api_key=None)


class WrongOutput(RuntimeError):
    """A run finished but its values are not what the graph computes."""


async def make_threads(c: LangGraphClient, count: int) -> list[str]:
    threads = []
    for _ in range(count):
        threads.append((await c.threads.create())["thread_id"])
    return threads


async def one_run(c: LangGraphClient, thread_id: str, n: int) -> float:
    """Create + join one run; its latency in ms."""
    t0 = time.perf_counter()
    run = await c.runs.create(thread_id, GRAPH, input={"n": n})
    out = await c.runs.join(thread_id, run["run_id"])
    elapsed = (time.perf_counter() - t0) * 1000
    if not isinstance(out, dict) or out.get("n") != n + 1:
        raise WrongOutput(f"run {run['run_id']}: expected n={n + 1}, got {out!r}"[:300])
    return elapsed


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50_ms": round(pct(0.50), 2),
        "p90_ms": round(pct(0.90), 2),
        "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "min_ms": round(ordered[0], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def sequential(url: str, runs: int, warmup: int) -> dict[str, Any]:
    """One client, one run at a time, each on a thread of its own."""
    c = client(url)
    try:
        threads = await make_threads(c, warmup + runs)
        for i, tid in enumerate(threads[:warmup]):
            await one_run(c, tid, i)
        latencies = [await one_run(c, tid, i) for i, tid in enumerate(threads[warmup:])]
    finally:
        await c.aclose()
    return {"runs": runs, "warmup": warmup, **percentiles(latencies)}


async def concurrent(
    url: str, runs: int, clients: int, warmup_per_client: int, thread_per_run: bool = False
) -> dict[str, Any]:
    """`clients` tasks, each with its own SDK client (own connection pool),
    drawing from one budget of `runs` until it is spent.

    By default each client keeps one thread for all its runs; with
    thread_per_run every run gets a fresh thread (made beforehand).
    """
    sdk = [client(url) for _ in range(clients)]
    try:
        # One shared pool, made by all clients at once: enough for every run.
        per_client = warmup_per_client + -(-runs // clients) if thread_per_run else 1
        owned = await asyncio.gather(*(make_threads(c, per_client) for c in sdk))
        pool = [tid for tids in owned for tid in tids]
        pick: list[Callable[[], str]] = (
            [pool.pop for _ in sdk]
            if thread_per_run
            else [functools.partial(str, tids[0]) for tids in owned]
        )
        # A TaskGroup: one failed run cancels the other clients at once.
        async with asyncio.TaskGroup() as tg:
            for c, next_thread in zip(sdk, pick, strict=True):
                tg.create_task(_drain(c, next_thread, [warmup_per_client], []))
        budget = [runs]
        latencies: list[float] = []
        busy0, own0 = machine_busy_seconds(), time.process_time()
        t0 = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for c, next_thread in zip(sdk, pick, strict=True):
                tg.create_task(_drain(c, next_thread, budget, latencies))
        elapsed = time.perf_counter() - t0
        busy, own = machine_busy_seconds() - busy0, time.process_time() - own0
    finally:
        for c in sdk:
            await c.aclose()
    return {
        "runs": runs,
        "clients": clients,
        "threads": "per run" if thread_per_run else "per client",
        "warmup_runs": warmup_per_client * clients,
        "seconds": round(elapsed, 3),
        "runs_per_s": round(runs / elapsed, 2),
        # The server's processes and PostgreSQL (and Redis, for a peer that
        # uses it): whatever the machine spent besides these clients.
        "server_cpu_ms_per_run": round((busy - own) / runs * 1000, 2),
        **percentiles(latencies),
    }


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores), from
    /proc/stat: user, nice, system, irq, softirq and steal."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


async def _drain(
    c: LangGraphClient,
    next_thread: Callable[[], str],
    budget: list[int],
    latencies: list[float],
) -> None:
    """Take runs from `budget` (shared between clients, or a client's own for
    the warmup) until it is spent."""
    i = 0
    while budget[0] > 0:
        budget[0] -= 1  # one event loop: no lock needed between tasks
        latencies.append(await one_run(c, next_thread(), i))
        i += 1

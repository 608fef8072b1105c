"""This process's instruments: what it did, counted where it happened.

Each call site costs a counter increment or a histogram observation (a lock
and an add), so the claim and completion paths stay cheap. Every process
keeps its own counts: summed across processes they make the fleet's total
(the README's "Metrics and logs" says how). The numbers every process
agrees on (runs by status, queue depth, workers) are read from the
database at scrape time instead (``pgqueue.observe.database``).

With ``PROMETHEUS_MULTIPROC_DIR`` set before prometheus_client is imported,
these same instruments write to files in that directory, which
``exporter.exposition`` merges for a server that runs several processes on
one port.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

# A run waits and runs from milliseconds (a handler) to an hour (an agent).
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
# A statement or an HTTP request that does not stream.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

CLAIMS = Counter("pgqueue_claims", "Claim statements sent by this process's workers")
RUNS_CLAIMED = Counter("pgqueue_runs_claimed", "Runs claimed: one per attempt started")
CLAIM_LATENCY = Histogram(
    "pgqueue_claim_latency_seconds", "How long one claim statement took", buckets=FAST_BUCKETS
)
QUEUE_WAIT = Histogram(
    "pgqueue_queue_wait_seconds",
    "How long a run was ready (created, due, or handed back) before a worker claimed it",
    buckets=RUN_BUCKETS,
)
RUN_DURATION = Histogram(
    "pgqueue_run_duration_seconds",
    "One attempt, claim to final write, by how it ended "
    "(success, error, interrupted, timeout, rolled_back, or retry: failed and queued again)",
    ["status"],
    buckets=RUN_BUCKETS,
)
RETRIES = Counter("pgqueue_run_retries", "Failed attempts queued to be tried again")
LEASES_LOST = Counter(
    "pgqueue_leases_lost", "Attempts that found their lease gone and wrote no outcome"
)
HEARTBEATS = Counter("pgqueue_heartbeats", "Heartbeats that renewed a worker's leases")
SWEEPS = Counter("pgqueue_sweeps", "Sweep passes run by this process")
SWEPT_RUNS = Counter(
    "pgqueue_swept_runs",
    "Runs a sweep took back from silent workers: requeued, or failed after max attempts",
    ["outcome"],
)
SWEPT_WORKERS = Counter("pgqueue_swept_workers", "Dead workers' rows a sweep removed")
NOTIFICATIONS = Counter(
    "pgqueue_notifications", "NOTIFY messages this process received, by channel", ["channel"]
)
EVENTS_WRITTEN = Counter("pgqueue_events_written", "Stream event rows written for runs")
HTTP_REQUESTS = Counter(
    "lg_api_http_requests",
    "HTTP requests answered, by route template",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "lg_api_http_requests_latency_seconds",
    "HTTP request latency (a stream's: until it ends), by route template",
    ["method", "route"],
    buckets=FAST_BUCKETS,
)

# Series that exist from the start, at zero: a query over them then finds
# a value before the first event (rate() needs two samples).
for _outcome in ("requeued", "failed"):
    SWEPT_RUNS.labels(_outcome)
for _status in ("success", "error", "retry"):
    RUN_DURATION.labels(_status)


def claimed(waits: Sequence[float], seconds: float) -> None:
    """One claim statement that took ``seconds`` and returned runs that had
    waited ``waits`` seconds each."""
    CLAIMS.inc()
    CLAIM_LATENCY.observe(seconds)
    if waits:
        RUNS_CLAIMED.inc(len(waits))
        for waited in waits:
            QUEUE_WAIT.observe(max(waited, 0.0))


def run_ended(status: str, seconds: float) -> None:
    """An attempt's outcome was written: ``status``, or "retry"."""
    RUN_DURATION.labels(status).observe(seconds)
    if status == "retry":
        RETRIES.inc()


def swept(requeued: int, failed: int, workers_removed: int) -> None:
    """One sweep pass (one that found the sweep lock taken counts, at 0)."""
    SWEEPS.inc()
    if requeued:
        SWEPT_RUNS.labels("requeued").inc(requeued)
    if failed:
        SWEPT_RUNS.labels("failed").inc(failed)
    if workers_removed:
        SWEPT_WORKERS.inc(workers_removed)


# -- pools -----------------------------------------------------------------

# Every open asyncpg pool of pgqueue's (pgqueue.db.pools), by id: asyncpg's
# Pool takes no weak reference, so close_pool forgets it.
_pools: dict[int, tuple[str, Any]] = {}


def watch_pool(pool: Any, name: str) -> None:
    _pools[id(pool)] = (name, pool)


def forget_pool(pool: Any) -> None:
    _pools.pop(id(pool), None)


class PoolCollector(Collector):
    """``lg_api_pg_pool_max``, ``_size`` and ``_available`` of this process's
    asyncpg pools, summed by role (http, worker, events, maintenance), read
    at scrape time."""

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, list[int]] = {}
        for name, pool in list(_pools.values()):
            if pool.is_closing():
                continue
            total = totals.setdefault(name, [0, 0, 0])
            total[0] += pool.get_max_size()
            total[1] += pool.get_size()
            total[2] += pool.get_idle_size()
        families = (
            GaugeMetricFamily(
                "lg_api_pg_pool_max", "Connections the pools may open", labels=["pool"]
            ),
            GaugeMetricFamily("lg_api_pg_pool_size", "Connections the pools hold", labels=["pool"]),
            GaugeMetricFamily(
                "lg_api_pg_pool_available", "Idle connections, free to use", labels=["pool"]
            ),
        )
        for name, values in sorted(totals.items()):
            for family, value in zip(families, values, strict=True):
                family.add_metric([name], value)
        yield from families

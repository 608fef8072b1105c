"""The gauges read from the database at scrape time.

Counted from the rows themselves (``observe.sql``), so a scrape of any
process gives the same values as a scrape of any other, and they agree
with ``SELECT status, count(*) FROM runs GROUP BY status``. Across
processes take one of them (``max``), never their sum. The platform's
names are used where it has one (``lg_api_num_pending_runs``, ...).

prometheus_client collects synchronously; the rows are read before, with
``read()``, and the ``Snapshot`` it returns is what a scrape collects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pgqueue.db.sql import queries

# Every status a run can have: each gets a series, zero when no run has it.
STATUSES = ("pending", "running", "success", "error", "timeout", "interrupted")


@dataclass(eq=False)  # hashable: a registry keys its collectors
class Snapshot(Collector):
    """What the database said at one scrape; ``up`` False: it did not answer
    (then only ``pgqueue_database_up`` is reported, at 0)."""

    up: bool
    runs: dict[str, int] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pgqueue_database_up",
            "1 if the database answered this scrape's queries",
            value=1 if self.up else 0,
        )
        if not self.up:
            return
        by_status = GaugeMetricFamily(
            "pgqueue_runs", "Runs in the database, by status", labels=["status"]
        )
        for status in sorted(set(STATUSES) | set(self.runs)):
            by_status.add_metric([status], self.runs.get(status, 0))
        yield by_status
        q = self.queue
        depth = GaugeMetricFamily(
            "pgqueue_queue_depth",
            "Pending runs: ready to claim, or delayed (due later)",
            labels=["state"],
        )
        depth.add_metric(["ready"], q["ready"])
        depth.add_metric(["delayed"], q["delayed"])
        yield depth
        for name, help_text, value in (
            ("lg_api_num_pending_runs", "Runs waiting to be claimed", self.runs.get("pending", 0)),
            ("lg_api_num_running_runs", "Runs being executed", self.runs.get("running", 0)),
            (
                "lg_api_pending_runs_wait_time_max",
                "Seconds the longest-waiting ready run has waited",
                q["wait_max"],
            ),
            (
                "lg_api_pending_runs_wait_time_med",
                "Median seconds the ready runs have waited",
                q["wait_median"],
            ),
            ("lg_api_workers_max", "Run slots of the live workers (their concurrency)", q["slots"]),
            ("lg_api_workers_active", "Slots of live workers holding a run", q["busy"]),
            (
                "lg_api_workers_available",
                "Free slots of live workers",
                max(q["slots"] - q["busy"], 0),
            ),
            ("pgqueue_workers", "Live worker processes (heartbeating)", q["workers"]),
            ("pgqueue_stale_runs", "Running runs whose lease ran out, not swept yet", q["stale"]),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


async def read(pool: asyncpg.Pool, seconds: float = 2.0) -> Snapshot:
    """The database's gauges now; a ``Snapshot`` with ``up`` False if it
    did not answer within ``seconds`` (a scrape still gets the process's
    own counters)."""
    try:
        async with pool.acquire(timeout=seconds) as conn:
            rows = await conn.fetch(queries.observe_runs_by_status, timeout=seconds)
            queue = await conn.fetchrow(queries.observe_queue, timeout=seconds)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return Snapshot(up=False)
    assert queue is not None
    return Snapshot(up=True, runs={r["status"]: r["runs"] for r in rows}, queue=dict(queue.items()))

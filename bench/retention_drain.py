"""The drain bench/retention.py measures claims with, and what it samples
beside them: drainer tasks that submit, claim and complete runs as a
worker's connections do, timing the claim; a sampler of lock waits and of
what else ran at each moment (the pruner's batch, vacuum, analyze, the
oldest snapshot); the server log's lock waits; the machine's busy CPU."""

from __future__ import annotations

import asyncio
import bisect
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pgqueue.core import queue  # noqa: E402
from pgqueue.core.queue import Completion, NewRun  # noqa: E402
from pgqueue.db.ids import uuid7  # noqa: E402

# --private-cluster: every lock wait past 100 ms goes to the server's log
# (the "log_lock_waits evidence"); autovacuum stays at initdb's
# default, on, unlike this machine's shared server.
LOCK_LOG = {
    "log_lock_waits": "on",
    "deadlock_timeout": "100ms",
    "log_line_prefix": "%m [%p] %a: ",  # who waited: drain, pruner, or another
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


class Drain:
    """Drainers: submit / claim / complete, the claim timed, by phase."""

    def __init__(self, dsn: str, drainers: int) -> None:
        self.dsn, self.n = dsn, drainers
        self.phase = "idle"
        # bench/retention.py --ab-window: how many times the pass was held.
        self.windows_paused = 0
        self.claims: dict[str, list[float]] = {"idle": [], "pruning": [], "paused": [], "after": []}
        # (monotonic time the claim ended, phase, ms): to set beside what
        # the sampler saw at that moment (see conditions()).
        self.timed: list[tuple[float, str, float]] = []
        self.stop = asyncio.Event()
        # (monotonic time, what CONDITIONS read), every 10 ms.
        self.states: list[tuple[float, dict[str, Any]]] = []

    async def one(self, i: int) -> None:
        # As a worker's claim and completion connections are set up.
        settings = {"application_name": "drain", "synchronous_commit": "off"}
        conn = await asyncpg.connect(self.dsn, server_settings=settings)
        try:
            while not self.stop.is_set():
                await queue.submit(conn, [NewRun(thread_id=uuid7())], wake=False)
                t0, phase = time.perf_counter(), self.phase
                claimed = await queue.claim(conn, f"drain-{i}", 1)
                took = (time.perf_counter() - t0) * 1000
                # A claim across a change of phase counts in neither.
                if self.phase == phase and phase in self.claims:
                    self.claims[self.phase].append(took)
                    self.timed.append((time.monotonic(), self.phase, took))
                done = [Completion(r.run_id, r.attempt, "success") for r in claimed]
                await queue.complete(conn, f"drain-{i}", done)
        finally:
            await conn.close()


async def watch_locks(drain: Drain, pruner_app: str, stop: asyncio.Event) -> dict[str, Any]:
    """The longest lock wait of a drainer, sampled every 10 ms in every
    phase: the sampling query costs the drainers something too, so it runs
    alike while the table is idle, pruned and after (an earlier build
    sampled only during the pass, which counted its cost against the pass)."""
    conn = await asyncpg.connect(drain.dsn)
    longest, blocked_by_pruner, samples = 0.0, 0, 0
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                """SELECT extract(epoch FROM clock_timestamp() - query_start) * 1000 AS ms,
                          EXISTS (SELECT FROM pg_stat_activity b
                                  WHERE b.pid = ANY(pg_blocking_pids(a.pid))
                                    AND b.application_name = $1) AS by_pruner
                   FROM pg_stat_activity a
                   WHERE a.application_name = 'drain' AND a.wait_event_type = 'Lock'""",
                pruner_app,
            )
            state = await conn.fetchrow(CONDITIONS, pruner_app)
            assert state is not None
            drain.states.append((time.monotonic(), dict(state)))
            if drain.phase == "pruning":
                samples += 1
                for r in rows:
                    longest = max(longest, float(r["ms"]))
                    blocked_by_pruner += bool(r["by_pruner"])
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return {
        "samples": samples,
        "longest_lock_wait_ms": round(longest, 1),
        "waits_blocked_by_pruner": blocked_by_pruner,
    }


# What else was going on when a claim ran: the pruner's batch, autovacuum
# (or autoanalyze) on the tables it empties, and the oldest snapshot any
# backend holds (a pinned horizon leaves dead index entries in the claim's
# way, DESIGN.md).
CONDITIONS = """
SELECT EXISTS (SELECT FROM pg_stat_activity
               WHERE application_name = $1 AND state = 'active') AS pruner_batch,
       EXISTS (SELECT FROM pg_stat_progress_vacuum v JOIN pg_class c ON c.oid = v.relid
               WHERE c.relname IN ('runs', 'run_events')) AS vacuum,
       EXISTS (SELECT FROM pg_stat_progress_analyze) AS analyze,
       coalesce((SELECT max(age(backend_xmin)) FROM pg_stat_activity
                 WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
                   -- PostgreSQL leaves a vacuum's own snapshot out when it
                   -- computes the horizon, so it pins nothing
                   AND backend_type <> 'autovacuum worker'), 0) AS xmin_age,
       -- What the drainers' active backends were doing: on the CPU (or
       -- waiting for it: no wait event) or waiting on what.
       (SELECT coalesce(jsonb_object_agg(w.what, w.n), '{}') FROM (
            SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') AS what, count(*) AS n
            FROM pg_stat_activity WHERE application_name = 'drain' AND state = 'active'
            GROUP BY 1) w)::text AS drain_waits
"""


def conditions(drain: Drain) -> dict[str, Any]:
    """Claim p50/p99 of the pruning and after phases, split by what the
    sampler saw at the claim's end: the pruner's batch running or pausing,
    autovacuum on runs/run_events or not, any autoanalyze or not."""
    times = [t for t, _ in drain.states]
    split: dict[str, list[float]] = {}
    for t, phase, took in drain.timed:
        if phase == "idle" or not times:
            continue
        i = min(bisect.bisect_left(times, t), len(times) - 1)
        state = drain.states[i][1]
        for key in ("pruner_batch", "vacuum", "analyze"):
            split.setdefault(f"{phase}/{key}={state[key]}", []).append(took)
    xmin = [s["xmin_age"] for _, s in drain.states]
    # Drainers' backends seen in each state, by whether a batch was running.
    waits: dict[str, dict[str, int]] = {}
    for _, s in drain.states:
        seen = waits.setdefault(f"pruner_batch={s['pruner_batch']}", {})
        for what, n in json.loads(s["drain_waits"]).items():
            seen[what] = seen.get(what, 0) + n
    return {
        "drain_backends_seen": waits,
        "claims_by_condition": {
            k: {"n": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)}
            for k, v in sorted(split.items())
        },
        "oldest_xmin_age_max": max(xmin, default=0),
        "share_of_samples": {
            key: round(sum(bool(s[key]) for _, s in drain.states) / max(1, len(drain.states)), 3)
            for key in ("pruner_batch", "vacuum", "analyze")
        },
    }


async def lock_waits(log_file: Path, dsn: str) -> list[str]:
    """Each lock wait the server logged (one past deadlock_timeout), with
    the lines that follow it (who held the lock, the statement), and the
    relation's name for its oid."""
    lines = log_file.read_text(errors="replace").splitlines()
    waits = [" | ".join(lines[i : i + 4]) for i, x in enumerate(lines) if "still waiting for" in x]
    conn = await asyncpg.connect(dsn)
    try:
        names = {
            oid: await conn.fetchval("SELECT relname FROM pg_class WHERE oid = $1", int(oid))
            for wait in waits
            for oid in re.findall(r"relation (\d+)", wait)
        }
    finally:
        await conn.close()
    return [
        re.sub(r"relation (\d+)", lambda m: f"relation {m[1]} ({names[m[1]]})", w) for w in waits
    ]


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)

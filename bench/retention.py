"""Retention under load (issue 15): the pruner deletes a big history while
workers drain new runs. Does the queue notice?

    python bench/retention.py                    # 1,000,000 finished runs
    python bench/retention.py --runs 100000      # a quicker look

The history: --runs finished runs, ended 40 days ago, 10 per thread, each
with 3 stream events; every thread has 2 checkpoints (with a blob and a
write each) and a TTL (strategy delete) that ran out a day ago. So the
pruner's pass deletes every event (event retention), then 90% of the runs
(run retention: each thread's newest run stays), then every thread with
its last run and checkpoints (thread TTL).

Measured, in one database:
  claim p50/p99    --drainers tasks each loop submit / claim / complete on a
                   new thread; the claim statement's latency, first on the
                   idle table (--idle-seconds), then while the pass runs,
                   then as long again after it (the drain's own growth)
  lock waits       every 10 ms, drainers' backends waiting on a lock
                   (pg_stat_activity wait_event_type 'Lock'): the longest
                   wait seen, and whether the pruner's backend blocked one
                   (pg_blocking_pids)
  dead tuples      pg_stat_user_tables after the pass, and after VACUUM
  the pass         wall time, rows deleted, batches
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchdb  # noqa: E402

from pgqueue.core import queue  # noqa: E402
from pgqueue.core.queue import Completion, NewRun  # noqa: E402
from pgqueue.db import migrate  # noqa: E402
from pgqueue.db.ids import uuid7  # noqa: E402
from pgqueue.maintenance.pruner import Pruner, PrunerConfig  # noqa: E402

TABLES = ("runs", "run_events", "threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes")

FILL = [
    # Threads whose TTL ran out a day ago (the trigger sets expires_at).
    """INSERT INTO threads (thread_id, metadata, ttl_strategy, ttl_minutes, created_at, updated_at)
       SELECT gen_random_uuid(), '{}', 'delete', 60, now() - interval '41 days',
              now() - interval '1 day' - interval '1 hour'
       FROM generate_series(1, $1 / 10)""",
    """INSERT INTO runs (run_id, thread_id, status, attempt, worker_id, kwargs, output,
                         created_at, started_at, ended_at)
       SELECT gen_random_uuid(), t.thread_id, 'success', 1, 'old', '{}', '{"ok": true}',
              now() - interval '41 days', now() - interval '40 days',
              now() - interval '40 days' + k * interval '1 second'
       FROM threads t, generate_series(1, 10) k ORDER BY k""",
    """INSERT INTO run_events (run_id, seq, attempt, event, data)
       SELECT r.run_id, s, 1, 'messages/partial', to_jsonb(repeat('x', 200))
       FROM runs r, generate_series(1, 3) s""",
    """INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, type, checkpoint, metadata)
       SELECT t.thread_id::text, '', 'c' || c, 'json', '{"channel_versions": {"v": "1"}}', '{}'
       FROM threads t, generate_series(1, 2) c""",
    """INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
       SELECT thread_id, '', 'v', checkpoint_id, 'json', convert_to(repeat('y', 300), 'UTF8')
       FROM checkpoints""",
    """INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                                      channel, type, blob)
       SELECT thread_id, '', checkpoint_id, 't', 0, 'v', 'json', convert_to('{}', 'UTF8')
       FROM checkpoints""",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


async def counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


async def dead_tuples(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await asyncio.sleep(1)  # the stats collector's next report
    rows = await conn.fetch(
        "SELECT relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid) AS bytes "
        "FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
        list(TABLES),
    )
    return {r["relname"]: {k: r[k] for k in ("n_live_tup", "n_dead_tup", "bytes")} for r in rows}


class Drain:
    """Drainers: submit / claim / complete, the claim timed, by phase."""

    def __init__(self, dsn: str, drainers: int) -> None:
        self.dsn, self.n = dsn, drainers
        self.phase = "idle"
        self.claims: dict[str, list[float]] = {"idle": [], "pruning": [], "after": []}
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
                t0 = time.perf_counter()
                claimed = await queue.claim(conn, f"drain-{i}", 1)
                took = (time.perf_counter() - t0) * 1000
                if self.phase in self.claims:
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
                 WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()), 0) AS xmin_age
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
    return {
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


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


async def measure(
    dsn: str, runs: int, drainers: int, idle_seconds: float, pause_ratio: float
) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    for statement in FILL:
        await conn.execute(statement, runs) if "$1" in statement else await conn.execute(statement)
    await conn.execute("VACUUM ANALYZE")
    fill_s = time.perf_counter() - t0
    before = await counts(conn)
    drain = Drain(dsn, drainers)
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(watch_locks(drain, "pruner", stop_watch))
    tasks = [asyncio.create_task(drain.one(i)) for i in range(drainers)]
    cpu = {"idle": busy_jiffies()}
    await asyncio.sleep(idle_seconds)
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=1, server_settings={"application_name": "pruner"}
    )
    pruner = Pruner(pool, PrunerConfig(interval=60, pause_ratio=pause_ratio))
    drain.phase = "pruning"
    cpu["pruning"] = busy_jiffies()
    t0 = time.perf_counter()
    passes, totals = 0, {"events": 0, "runs": 0, "threads": 0, "batches": 0}
    while True:
        result = await pruner.run_once()
        passes += 1
        totals["events"] += result.events
        totals["runs"] += result.runs
        totals["threads"] += result.threads_deleted
        totals["batches"] += result.batches
        if not (result.events or result.runs or result.threads_deleted):
            break
    prune_s = time.perf_counter() - t0
    drain.phase = "after"
    cpu["after"] = busy_jiffies()
    # The same drain on the table the pass left: what the drain's own growth
    # does to a claim, apart from the pass.
    await asyncio.sleep(idle_seconds)
    cpu["end"] = busy_jiffies()
    stop_watch.set()
    locks = await watcher
    drain.stop.set()
    await asyncio.gather(*tasks)
    await pool.close()
    after = await counts(conn)
    dead_after_pass = await dead_tuples(conn)
    await conn.execute("VACUUM " + ", ".join(TABLES))
    dead_after_vacuum = await dead_tuples(conn)
    await conn.close()
    idle, pruning, later = drain.claims["idle"], drain.claims["pruning"], drain.claims["after"]
    return {
        "runs": runs,
        "drainers": drainers,
        "fill_s": round(fill_s, 1),
        "before": before,
        "after": after,
        "deleted": totals,
        "passes": passes,
        "prune_s": round(prune_s, 1),
        "claims_idle": {"n": len(idle), "p50_ms": pct(idle, 0.5), "p99_ms": pct(idle, 0.99)},
        "claims_pruning": {
            "n": len(pruning),
            "p50_ms": pct(pruning, 0.5),
            "p99_ms": pct(pruning, 0.99),
        },
        "claims_after": {"n": len(later), "p50_ms": pct(later, 0.5), "p99_ms": pct(later, 0.99)},
        "locks": locks,
        **conditions(drain),
        "pause_ratio": pause_ratio,
        # The machine's busy share of its CPU in each phase (2 cores here).
        "cpu_busy": {
            phase: round((cpu[nxt][0] - cpu[phase][0]) / max(1, cpu[nxt][1] - cpu[phase][1]), 3)
            for phase, nxt in (("idle", "pruning"), ("pruning", "after"), ("after", "end"))
        },
        "dead_after_pass": dead_after_pass,
        "dead_after_vacuum": dead_after_vacuum,
    }


async def main() -> None:
    ap = benchdb.arg_parser(__doc__)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--drainers", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument(
        "--pause-ratio",
        type=float,
        default=PrunerConfig.pause_ratio,
        help="the pruner's pause after each batch, in multiples of its time",
    )
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    async with benchdb.fresh_database(a.dsn, "retention") as dsn:
        result = await measure(dsn, a.runs, a.drainers, a.idle_seconds, a.pause_ratio)
    text = json.dumps(result, indent=2)
    print(text)
    if a.output:
        a.output.write_text(text)
    ratio = {
        q: round(result["claims_pruning"][q] / result["claims_idle"][q], 2)
        for q in ("p50_ms", "p99_ms")
    }
    print(f"claim latency while pruning / idle: p50 {ratio['p50_ms']}x, p99 {ratio['p99_ms']}x")


if __name__ == "__main__":
    asyncio.run(main())

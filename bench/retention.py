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
        self.stop = asyncio.Event()

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
                done = [Completion(r.run_id, r.attempt, "success") for r in claimed]
                await queue.complete(conn, f"drain-{i}", done)
        finally:
            await conn.close()


async def watch_locks(dsn: str, pruner_app: str, stop: asyncio.Event) -> dict[str, Any]:
    """The longest lock wait of a drainer, sampled every 10 ms."""
    conn = await asyncpg.connect(dsn)
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


async def measure(dsn: str, runs: int, drainers: int, idle_seconds: float) -> dict[str, Any]:
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    for statement in FILL:
        await conn.execute(statement, runs) if "$1" in statement else await conn.execute(statement)
    await conn.execute("VACUUM ANALYZE")
    fill_s = time.perf_counter() - t0
    before = await counts(conn)
    drain = Drain(dsn, drainers)
    tasks = [asyncio.create_task(drain.one(i)) for i in range(drainers)]
    await asyncio.sleep(idle_seconds)
    drain.phase = "pruning"
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=1, server_settings={"application_name": "pruner"}
    )
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(watch_locks(dsn, "pruner", stop_watch))
    pruner = Pruner(pool, PrunerConfig(interval=60))
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
    stop_watch.set()
    locks = await watcher
    # The same drain on the table the pass left: what the drain's own growth
    # does to a claim, apart from the pass.
    await asyncio.sleep(idle_seconds)
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
        "dead_after_pass": dead_after_pass,
        "dead_after_vacuum": dead_after_vacuum,
    }


async def main() -> None:
    ap = benchdb.arg_parser(__doc__)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--drainers", type=int, default=4)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--output", type=Path)
    a = ap.parse_args()
    async with benchdb.fresh_database(a.dsn, "retention") as dsn:
        result = await measure(dsn, a.runs, a.drainers, a.idle_seconds)
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

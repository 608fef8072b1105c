"""Retention under load (issue 15): the pruner deletes a big history while
workers drain new runs. Does the queue notice?

    python bench/retention.py                    # 1,000,000 finished runs
    python bench/retention.py --runs 100000      # a quicker look
    python bench/retention.py --private-cluster  # autovacuum on, lock waits logged

The history: --runs finished runs, ended 40 days ago, 10 per thread, each
with 3 stream events; every thread has 2 checkpoints (with a blob and a
write each) and a TTL (strategy delete) that ran out a day ago. So the
pruner's pass deletes every event (event retention), then 90% of the runs
(run retention: each thread's newest run stays), then every thread with
its last run and checkpoints (thread TTL). Run ids are UUIDv7, as pgqueue
makes them.

Measured, in one database:
  claim p50/p99    --drainers tasks each loop submit / claim / complete on a
                   new thread; the claim statement's latency, first on the
                   idle table (--idle-seconds), then while the pass runs,
                   then as long again after it (the drain's own growth).
                   With --ab-window S (the default, 10 s), the pass stops
                   every S seconds, at the end of a batch, for S seconds:
                   the claims of those windows ("paused") are the idle
                   table's at the same moments and on the same rows, so
                   this VM's drift over minutes, which moved the ratios by
                   up to 0.4x between invocations, falls out of the
                   comparison. With --control, a second copy of the history
                   drained as long as the pass took, unpruned
  lock waits       every 10 ms, drainers' backends waiting on a lock
                   (pg_stat_activity wait_event_type 'Lock'): the longest
                   wait seen, and whether the pruner's backend blocked one
                   (pg_blocking_pids); with --private-cluster, also every
                   wait past 100 ms the server logged (log_lock_waits)
  dead tuples      pg_stat_user_tables after the pass, and after VACUUM
  the pass         wall time, rows deleted, batches
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchdb  # noqa: E402
from retention_drain import (  # noqa: E402
    LOCK_LOG,
    Drain,
    busy_jiffies,
    conditions,
    lock_waits,
    pct,
    watch_locks,
)

from pgqueue.db import migrate  # noqa: E402
from pgqueue.maintenance.pruner import Pruner, PrunerConfig  # noqa: E402

# The pruner's settings the command line may change (PrunerConfig's
# defaults otherwise).
KNOBS = {
    "pause_ratio": "the pause after each batch, in multiples of its time",
    "batch_pause": "the pause after each batch, at least (seconds)",
    "batch_size": "events per batch",
    "run_batch_size": "runs per batch",
    "thread_batch_size": "expired threads per batch",
}

TABLES = ("runs", "run_events", "threads", "checkpoints", "checkpoint_blobs", "checkpoint_writes")

FILL = [
    # Threads whose TTL ran out a day ago (the trigger sets expires_at).
    """INSERT INTO threads (thread_id, metadata, ttl_strategy, ttl_minutes, created_at, updated_at)
       SELECT gen_random_uuid(), '{}', 'delete', 60, now() - interval '41 days',
              now() - interval '1 day' - interval '1 hour'
       FROM generate_series(1, $1 / 10)""",
    # Run ids as pgqueue makes them: UUIDv7, in the order the runs were
    # made (pgqueue.db.ids.uuid7), here a millisecond apart 41 days ago. So
    # run_id order is the order of the rows on disk, as in a real history
    # (random ids would send the events batch, which walks run_id order, to
    # a random page for every run).
    """INSERT INTO runs (run_id, thread_id, status, attempt, worker_id, kwargs, output,
                         created_at, started_at, ended_at)
       SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                  PLACING substring(int8send((extract(epoch FROM made) * 1000)::bigint) FROM 3)
                  FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
              thread_id, 'success', 1, 'old', '{}', '{"ok": true}',
              made, now() - interval '40 days', now() - interval '40 days' + k * interval '1 second'
       FROM (SELECT t.thread_id, k, now() - interval '41 days'
                    + row_number() OVER (ORDER BY k, t.thread_id) * interval '1 millisecond' AS made
             FROM threads t, generate_series(1, 10) k) history
       ORDER BY made""",
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


async def fill(dsn: str, runs: int) -> tuple[asyncpg.Connection, float]:
    """A database at head holding the history; a connection to it, and the
    seconds the fill took."""
    migrate.upgrade(dsn)
    conn = await asyncpg.connect(dsn)
    t0 = time.perf_counter()
    for statement in FILL:
        await conn.execute(statement, runs) if "$1" in statement else await conn.execute(statement)
    await conn.execute("VACUUM ANALYZE")
    return conn, time.perf_counter() - t0


async def control(
    dsn: str, runs: int, drainers: int, idle_seconds: float, seconds: float
) -> dict[str, Any]:
    """The same history and drain, and the same sampler, with no pruner:
    the claims of the window the pass took in measure(). The drain grows
    the table it claims from, and autovacuum works on it, whatever the
    pruner does; this is the idle table over the same time."""
    conn, _ = await fill(dsn, runs)
    await conn.close()
    drain = Drain(dsn, drainers)
    drain.claims["control"] = []
    stop_watch = asyncio.Event()
    watcher = asyncio.create_task(watch_locks(drain, "pruner", stop_watch))
    tasks = [asyncio.create_task(drain.one(i)) for i in range(drainers)]
    await asyncio.sleep(idle_seconds)
    drain.phase = "control"
    await asyncio.sleep(seconds)
    drain.phase = "done"
    stop_watch.set()
    await watcher
    drain.stop.set()
    await asyncio.gather(*tasks)
    claims = drain.claims["control"]
    return {"n": len(claims), "p50_ms": pct(claims, 0.5), "p99_ms": pct(claims, 0.99)}


class GatedPruner(Pruner):
    """The pruner, held before its next batch while ``gate`` is clear:
    ``held`` is set once it waits there, so no batch of it is running."""

    def __init__(self, pool: asyncpg.Pool, config: PrunerConfig) -> None:
        super().__init__(pool, config)
        self.gate, self.held = asyncio.Event(), asyncio.Event()
        self.gate.set()
        self.held_s = 0.0  # the pass's time spent held

    async def _pause(self, batches: int) -> None:
        await super()._pause(batches)
        if not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
            self.held.clear()
            self._started, since = time.monotonic(), self._started
            self.held_s += self._started - since  # the next pause is the batch's, not this


async def alternate(drain: Drain, pruner: GatedPruner, window: float, done: asyncio.Event) -> None:
    """Windows of ``window`` seconds: the pass runs ("pruning"), then is
    held ("paused"). A paused window starts only when the batch under way
    has ended, so no claim counted there met one."""
    while not done.is_set():
        drain.phase = "pruning"
        pruner.gate.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), window)
        if done.is_set():
            return
        pruner.gate.clear()
        held, ended = asyncio.create_task(pruner.held.wait()), asyncio.create_task(done.wait())
        await asyncio.wait({held, ended}, return_when=asyncio.FIRST_COMPLETED)
        held.cancel()
        ended.cancel()
        if done.is_set():
            return
        drain.phase = "paused"
        drain.windows_paused += 1
        await asyncio.sleep(window)


async def measure(
    dsn: str,
    runs: int,
    drainers: int,
    idle_seconds: float,
    config: PrunerConfig,
    ab_window: float = 0.0,
) -> dict[str, Any]:
    conn, fill_s = await fill(dsn, runs)
    settings = {
        name: await conn.fetchval(f"SHOW {name}")
        for name in ("server_version", "autovacuum", "shared_buffers", "log_lock_waits")
    }
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
    pruner = GatedPruner(pool, config)
    drain.phase = "pruning"
    cpu["pruning"] = busy_jiffies()
    t0 = time.perf_counter()
    pass_done = asyncio.Event()
    windows = (
        asyncio.create_task(alternate(drain, pruner, ab_window, pass_done)) if ab_window else None
    )
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
    pass_done.set()
    if windows is not None:
        await windows
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
    paused = drain.claims["paused"]
    return {
        "server": settings,
        "runs": runs,
        "drainers": drainers,
        "fill_s": round(fill_s, 1),
        "before": before,
        "after": after,
        "deleted": totals,
        "passes": passes,
        "prune_s": round(prune_s, 1),
        "held_s": round(pruner.held_s, 1),  # of prune_s, the --ab-window holds
        "claims_idle": {"n": len(idle), "p50_ms": pct(idle, 0.5), "p99_ms": pct(idle, 0.99)},
        "claims_pruning": {
            "n": len(pruning),
            "p50_ms": pct(pruning, 0.5),
            "p99_ms": pct(pruning, 0.99),
        },
        "claims_after": {"n": len(later), "p50_ms": pct(later, 0.5), "p99_ms": pct(later, 0.99)},
        "ab_window_s": ab_window,
        "windows_paused": drain.windows_paused,
        **(
            {
                "claims_paused": {
                    "n": len(paused),
                    "p50_ms": pct(paused, 0.5),
                    "p99_ms": pct(paused, 0.99),
                }
            }
            if paused
            else {}
        ),
        "locks": locks,
        **conditions(drain),
        "pruner": {name: getattr(config, name) for name in KNOBS},
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
    for name, what in KNOBS.items():
        default = getattr(PrunerConfig, name)
        ap.add_argument(
            "--" + name.replace("_", "-"), type=type(default), default=default, help=what
        )
    ap.add_argument("--output", type=Path)
    ap.add_argument(
        "--private-cluster",
        action="store_true",
        help="run on a PostgreSQL 15 cluster of initdb's defaults (autovacuum on) started for "
        "this run, with log_lock_waits after 100 ms; its log's lock waits are counted",
    )
    ap.add_argument(
        "--ab-window",
        type=float,
        default=10.0,
        help="hold the pass every this many seconds for as long (0: never)",
    )
    ap.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="then drain a second copy of the history, unpruned, as long as the pass took",
    )
    a = ap.parse_args()
    with contextlib.ExitStack() as stack:
        cluster = None
        if a.private_cluster:
            from tests.support.pgcluster import start_cluster

            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            cluster = stack.enter_context(start_cluster(root, settings=LOCK_LOG))
            a.dsn = cluster.dsn()
        async with benchdb.fresh_database(a.dsn, "retention") as dsn:
            config = PrunerConfig(interval=60, **{name: getattr(a, name) for name in KNOBS})
            result = await measure(dsn, a.runs, a.drainers, a.idle_seconds, config, a.ab_window)
            if cluster is not None:
                result["lock_waits_logged_over_100ms"] = await lock_waits(cluster.log_file, dsn)
        if a.control:
            async with benchdb.fresh_database(a.dsn, "retention_control") as dsn:
                result["claims_control"] = await control(
                    dsn, a.runs, a.drainers, a.idle_seconds, result["prune_s"]
                )
    text = json.dumps(result, indent=2)
    print(text)
    if a.output:
        a.output.write_text(text)
    for base in ("paused", "idle", "control"):
        if f"claims_{base}" in result:
            p50, p99 = (
                round(result["claims_pruning"][q] / result[f"claims_{base}"][q], 2)
                for q in ("p50_ms", "p99_ms")
            )
            print(f"claim latency while pruning / {base}: p50 {p50}x, p99 {p99}x")


if __name__ == "__main__":
    asyncio.run(main())

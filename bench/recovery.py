"""Recovery time after SIGKILL: how long a killed worker's run waits before
another worker resumes it, with the default lease settings and tuned ones.

    python bench/recovery.py --dsn postgresql://postgres@127.0.0.1:5432/postgres --repeats 3

Each measurement gets a fresh database (created and dropped here). Worker A
(``pgqueue worker --config tests/graphs/langgraph.json``) claims a
three_steps run whose node two sleeps for ten minutes on its first attempt;
worker B starts; after a random wait within one heartbeat interval (so the
kill lands at a random phase of A's heartbeat) A is SIGKILLed. Then, from
the kill:

- requeued: the sweeper put the run back to pending (a trigger in the
  bench database records the moment, clock_timestamp() in the sweep);
- resumed: B's claim of the next attempt (``runs.started_at``);
- finished: the run's ``ended_at`` (B resumes from node two's checkpoint).

What bounds it: A's lease is stale ``stale_after`` seconds after its last
heartbeat (which was up to one heartbeat interval before the kill), and the
next sweep after that (every ``sweep_interval``) requeues it, with a NOTIFY
that wakes B at once. So resumed ~ stale_after - U(0, heartbeat) + U(0, sweep).

Profiles: ``default`` passes no timing flags (heartbeat 5 s, lease 30 s from
the database's pgqueue.lease_timeout, sweep every 5 s); the PGQUEUE_*
timing variables are removed from the workers' environment so nothing
overrides them. ``tuned``: --heartbeat-interval 0.5 --stale-after 3
--sweep-interval 0.5.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from benchdb import arg_parser, fresh_database  # noqa: E402

from pgqueue.core import queue  # noqa: E402
from pgqueue.core.queue import NewRun  # noqa: E402
from pgqueue.db import migrate  # noqa: E402
from pgqueue.db.ids import uuid7  # noqa: E402
from pgqueue.execution.graphs import system_assistant_id  # noqa: E402

GRAPHS = REPO / "tests" / "graphs" / "langgraph.json"

PROFILES: dict[str, dict[str, Any]] = {
    "default": {"flags": [], "heartbeat": 5.0},
    "tuned": {
        "flags": ["--heartbeat-interval", "0.5", "--stale-after", "3", "--sweep-interval", "0.5"],
        "heartbeat": 0.5,
    },
}

# Anything here would override the defaults the "default" profile measures.
TIMING_ENV = (
    "PGQUEUE_HEARTBEAT_SECONDS",
    "PGQUEUE_LEASE_SECONDS",
    "PGQUEUE_SWEEP_SECONDS",
    "PGQUEUE_POLL_SECONDS",
    "PGQUEUE_SHUTDOWN_GRACE_SECONDS",
)


# When the run changed status (the requeue is a transaction of the
# sweeper's; polling would miss it when the claim follows in milliseconds).
TRANSITIONS_SQL = """
CREATE TABLE bench_transitions (status text, attempt int, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION bench_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_transitions (status, attempt) VALUES (NEW.status, NEW.attempt);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_transition AFTER UPDATE ON runs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION bench_transition();
"""


class Worker:
    def __init__(self, url: str, flags: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k not in TIMING_ENV}
        env.update(DATABASE_URL=url, PYTHONUNBUFFERED="1")
        self.log = tempfile.NamedTemporaryFile(prefix="recovery-worker-", suffix=".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--config", str(GRAPHS), *flags],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


async def until(probe: Any, timeout: float, what: str, worker: Worker | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\nworker log:\n{worker.tail()}" if worker else ""
            raise TimeoutError(f"no {what} after {timeout} s{tail}")
        await asyncio.sleep(0.02)


async def measure(admin: str, profile: str, rng: random.Random) -> dict[str, Any]:
    # The workers stop before the database goes (the drop forces them off).
    async with fresh_database(admin, "recovery") as url:
        workers: list[Worker] = []
        try:
            await asyncio.to_thread(migrate.upgrade, url)
            db = await asyncpg.connect(url)
            # three_steps records each node execution here.
            await db.execute(
                "CREATE TABLE node_runs (run_id text, node text, attempt int, "
                "at timestamptz DEFAULT clock_timestamp())"
            )
            await db.execute(TRANSITIONS_SQL)
            flags = PROFILES[profile]["flags"]
            a = Worker(url, flags)
            workers.append(a)

            async def registered(pid: int) -> bool:
                return bool(await db.fetchval("SELECT count(*) FROM workers WHERE pid = $1", pid))

            await until(lambda: registered(a.proc.pid), 60, "worker A", a)
            [sub] = await queue.submit(
                db,
                [
                    NewRun(
                        thread_id=uuid7(),
                        assistant_id=system_assistant_id("three_steps"),
                        kwargs={
                            "graph_id": "three_steps",
                            "input": {"log": [], "sleep_in_two": 600},
                            "durability": "sync",
                        },
                    )
                ],
            )

            async def in_node_two() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) FROM node_runs WHERE run_id = $1 AND node = 'two'",
                        str(sub.run_id),
                    )
                )

            await until(in_node_two, 60, "run in node two on A", a)
            b = Worker(url, flags)
            workers.append(b)
            await until(lambda: registered(b.proc.pid), 60, "worker B", b)
            # A random phase of A's heartbeat: the kill may come just after a beat
            # (longest wait) or just before one (shortest).
            await asyncio.sleep(rng.uniform(0, PROFILES[profile]["heartbeat"]))
            before = await db.fetchrow(
                "SELECT heartbeat_at, clock_timestamp() AS now FROM runs WHERE run_id = $1",
                sub.run_id,
            )
            killed = datetime.now(UTC)
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(10)

            async def resumed() -> asyncpg.Record | None:
                row = await db.fetchrow(
                    "SELECT status, attempt, started_at, worker_id FROM runs WHERE run_id = $1",
                    sub.run_id,
                )
                return row if row["attempt"] >= 2 and row["status"] != "pending" else None

            claimed = await until(resumed, 300, "resumed attempt", b)

            async def finished() -> asyncpg.Record | None:
                row = await db.fetchrow(
                    "SELECT status, attempt, ended_at FROM runs WHERE run_id = $1", sub.run_id
                )
                return row if row["status"] == "success" else None

            done = await until(finished, 60, "finished run", b)
            requeued = await db.fetchval(
                "SELECT min(at) FROM bench_transitions WHERE status = 'pending' AND attempt = 1"
            )
            nodes = await db.fetch(
                "SELECT node, count(*) AS n FROM node_runs WHERE run_id = $1 GROUP BY node",
                str(sub.run_id),
            )
            await db.close()
            return {
                "profile": profile,
                "heartbeat_age_at_kill_s": round(
                    (before["now"] - before["heartbeat_at"]).total_seconds(), 3
                ),
                "requeued_s": round((requeued - killed).total_seconds(), 3) if requeued else None,
                "resumed_s": round((claimed["started_at"] - killed).total_seconds(), 3),
                "finished_s": round((done["ended_at"] - killed).total_seconds(), 3),
                "attempt": done["attempt"],
                "resumed_by_b": f":{b.proc.pid}:" in claimed["worker_id"],
                "node_executions": {r["node"]: r["n"] for r in nodes},
            }
        finally:
            for w in workers:
                w.stop()


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples)}
    for key in ("resumed_s", "finished_s"):
        values = [s[key] for s in samples]
        out[key] = {
            "min": min(values),
            "median": round(statistics.median(values), 3),
            "max": max(values),
        }
    return out


async def main() -> None:
    ap = arg_parser(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()
    profiles = [p for p in a.profiles.split(",") if p]
    unknown = set(profiles) - PROFILES.keys()
    if unknown:
        raise SystemExit(f"unknown profiles {sorted(unknown)}; choose from {sorted(PROFILES)}")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)

    conn = await asyncpg.connect(a.dsn)
    server_version = await conn.fetchval("SHOW server_version")
    await conn.close()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "server_version": server_version,
        "command": "python bench/recovery.py " + " ".join(sys.argv[1:]),
        "seed": seed,
        "profiles": {p: PROFILES[p]["flags"] for p in profiles},
        "samples": [],
    }
    for i in range(a.repeats):
        for profile in profiles:
            sample = await measure(a.dsn, profile, rng)
            results["samples"].append(sample)
            print(f"repeat {i + 1} {json.dumps(sample)}", flush=True)
    results["summary"] = {
        p: summarize([s for s in results["samples"] if s["profile"] == p]) for p in profiles
    }
    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = a.out / f"recovery-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(
        f"{'profile':8} {'n':>2}  {'resumed min/median/max (s)':>28}  {'finished median (s)':>20}"
    )
    for p, s in results["summary"].items():
        r = s["resumed_s"]
        print(
            f"{p:8} {s['n']:>2}  {r['min']:>8} / {r['median']:>7} / {r['max']:>7}  "
            f"{s['finished_s']['median']:>20}"
        )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    asyncio.run(main())

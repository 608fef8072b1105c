"""Queue-core benchmark: pgqueue beside pgqueuer and procrastinate, same
machine, same invocation, same no-op jobs, batch size and worker count.

    pip install -e '.[dev,bench]'
    python bench/queue_core.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

Each peer gets a fresh database per measurement (created and dropped here)
and runs in its own processes through bench/peers/<peer>_peer.py. Repeats
are interleaved (pgqueue, pgqueuer, procrastinate, pgqueue, ...) so drift in
a shared machine's load hits every peer alike; medians are reported.

Also measured, pgqueue alone: claim latency with 1,000 vs 1,000,000 finished
rows in the table; submit throughput with 16 concurrent submitters with and
without the NOTIFY wake-up; the share of heartbeat updates that are HOT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchdb import arg_parser, fresh_database  # noqa: E402

from pgqueue.core import queue  # noqa: E402
from pgqueue.core.queue import Completion, NewRun  # noqa: E402
from pgqueue.db import migrate  # noqa: E402
from pgqueue.db.sql import queries  # noqa: E402
from pgqueue.types import WAKE_CHANNEL  # noqa: E402

PEERS = ("pgqueue", "pgqueuer", "procrastinate")


def run_peer(peer: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PGQUEUE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.run(
        [sys.executable, str(HERE / "peers" / f"{peer}_peer.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{peer} {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def peer_round(admin: str, peer: str, kind: str, a: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(admin, peer) as dsn:
        if kind == "drain":
            return await asyncio.to_thread(
                run_peer,
                peer,
                "drain",
                "--dsn",
                dsn,
                "--jobs",
                str(a.jobs),
                "--workers",
                str(a.workers),
                "--batch",
                str(a.batch),
            )
        return await asyncio.to_thread(
            run_peer, peer, "latency", "--dsn", dsn, "--samples", str(a.samples)
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def claim_latency(dsn: str, finished_rows: int, samples: int) -> dict[str, Any]:
    """p50/p99 of one claim statement with `finished_rows` done runs behind it."""
    conn = await asyncpg.connect(dsn, server_settings={"synchronous_commit": "off"})
    try:
        have = await conn.fetchval("SELECT count(*) FROM runs WHERE status = 'success'")
        if finished_rows > have:
            # Finished rows as a real queue leaves them: in runs, off the pending index.
            await conn.execute(
                """
                INSERT INTO runs (run_id, status, attempt, worker_id, kwargs, output, started_at, ended_at)
                SELECT gen_random_uuid(), 'success', 1, 'old-worker', '{}', '{"ok": true}', now(), now()
                FROM generate_series(1, $1)
                """,
                finished_rows - have,
            )
            await conn.execute("VACUUM ANALYZE runs")
        timings = []
        for _ in range(samples):
            await queue.submit(conn, [NewRun()], wake=False)
            t0 = time.perf_counter()
            [run] = await queue.claim(conn, "bench", 1)
            timings.append((time.perf_counter() - t0) * 1000)
            await queue.complete(conn, "bench", [Completion(run.run_id, run.attempt, "success")])
        return {
            "finished_rows": finished_rows,
            "p50_ms": round(pct(timings, 0.5), 3),
            "p99_ms": round(pct(timings, 0.99), 3),
        }
    finally:
        await conn.close()


async def submit_throughput(dsn: str, clients: int, seconds: float, wake: bool) -> dict[str, Any]:
    """Single-run submits (one transaction each) from `clients` connections."""
    listener = await asyncpg.connect(dsn)  # a worker's LISTEN, as in production
    await listener.add_listener(WAKE_CHANNEL, lambda *a: None)
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    async def submitter(i: int) -> None:
        while time.perf_counter() < deadline:
            await queue.submit(conns[i], [NewRun()], wake=wake)
            counts[i] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(submitter(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    await listener.close()
    return {"clients": clients, "wake": wake, "runs_per_s": round(sum(counts) / elapsed, 1)}


async def heartbeat_hot_share(dsn: str, runs: int, beats: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await queue.submit(conn, [NewRun() for _ in range(runs)], wake=False)
        claimed = await queue.claim(conn, "hb", runs)
        await conn.execute(queries.register_worker, "hb", "bench", os.getpid(), runs)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        stat = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1"
        before = {t: await conn.fetchrow(stat, t) for t in ("runs", "workers")}
        ids = [r.run_id for r in claimed]
        attempts = [r.attempt for r in claimed]
        for _ in range(beats):
            await conn.fetch(queries.heartbeat, "hb", ids, attempts, "bench", os.getpid(), runs)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await asyncio.sleep(0.1)
        result: dict[str, Any] = {"runs": runs, "beats": beats}
        for table in ("runs", "workers"):
            after = await conn.fetchrow(stat, table)
            upd = after["n_tup_upd"] - before[table]["n_tup_upd"]
            hot = after["n_tup_hot_upd"] - before[table]["n_tup_hot_upd"]
            result[f"{table}_updates"] = upd
            result[f"{table}_hot_share"] = round(hot / upd, 4) if upd else None
        return result
    finally:
        await conn.close()


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 3)


def render(results: dict[str, Any]) -> str:
    a = results["args"]
    lines = [
        f"Run {results['when']} on {results['machine']}; PostgreSQL {results['server_version']} "
        f"(fsync {results['fsync']}, synchronous_commit {results['synchronous_commit']}).",
        "",
        f"Command: `{results['command']}`",
        "",
        f"### Drain: {a['jobs']} no-op jobs, {a['workers']} worker processes, batch {a['batch']} "
        f"(median of {a['repeat']})",
        "",
        "| peer | jobs/s (median) | each round | pgqueue / peer |",
        "|---|---|---|---|",
    ]
    drain = results["drain"]
    ours = median_of(drain["pgqueue"], "jobs_per_s")
    for peer in a["peers"]:
        med = median_of(drain[peer], "jobs_per_s")
        each = ", ".join(f"{r['jobs_per_s']:.0f}" for r in drain[peer])
        lines.append(f"| {peer} | {med:,.0f} | {each} | {ours / med:.2f}x |")
    lines += [
        "",
        f"### Idle submit-to-start latency: {a['samples']} samples, one idle worker (median of {a['repeat']} rounds)",
        "",
        "| peer | p50 ms | p99 ms | mean ms | peer p50 / pgqueue p50 |",
        "|---|---|---|---|---|",
    ]
    lat = results["latency"]
    ours_p50 = median_of(lat["pgqueue"], "p50_ms")
    for peer in a["peers"]:
        p50 = median_of(lat[peer], "p50_ms")
        lines.append(
            f"| {peer} | {p50:.2f} | {median_of(lat[peer], 'p99_ms'):.2f} | "
            f"{median_of(lat[peer], 'mean_ms'):.2f} | {p50 / ours_p50:.2f}x |"
        )
    if "claim" in results:
        small, big = results["claim"]
        lines += [
            "",
            "### Claim latency vs finished rows in the table (pgqueue)",
            "",
            "| finished rows | claim p50 ms | claim p99 ms |",
            "|---|---|---|",
            f"| {small['finished_rows']:,} | {small['p50_ms']:.3f} | {small['p99_ms']:.3f} |",
            f"| {big['finished_rows']:,} | {big['p50_ms']:.3f} | {big['p99_ms']:.3f} |",
            "",
            f"Ratio (p50): {big['p50_ms'] / small['p50_ms']:.2f}x.",
        ]
    if "submit" in results:
        on, off = results["submit"]
        lines += [
            "",
            f"### Submit throughput, {on['clients']} concurrent submitters, one run per transaction (pgqueue)",
            "",
            "| wake-up NOTIFY | runs/s |",
            "|---|---|",
            f"| off | {off['runs_per_s']:,.0f} |",
            f"| on | {on['runs_per_s']:,.0f} |",
            "",
            f"With wake-ups: {on['runs_per_s'] / off['runs_per_s']:.2f}x of without "
            f"({(1 - on['runs_per_s'] / off['runs_per_s']) * 100:.0f}% lower).",
        ]
    if "hot" in results:
        h = results["hot"]
        lines += [
            "",
            f"### Heartbeat HOT share ({h['runs']} running runs x {h['beats']} beats)",
            "",
            f"- runs: {h['runs_updates']:,} updates, {h['runs_hot_share'] * 100:.1f}% HOT",
            f"- workers: {h['workers_updates']:,} updates, {h['workers_hot_share'] * 100:.1f}% HOT",
        ]
    return "\n".join(lines) + "\n"


async def main() -> None:
    ap = arg_parser(__doc__)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--finished-rows", type=int, default=1_000_000)
    ap.add_argument(
        "--skip-extras", action="store_true", help="peers only: no claim/submit/HOT figures"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results")
    a = ap.parse_args()
    peers = [p for p in a.peers.split(",") if p]
    if peers[0] != "pgqueue":
        raise SystemExit("--peers must start with pgqueue (ratios are against it)")

    conn = await asyncpg.connect(a.dsn)
    server = {
        k: await conn.fetchval(f"SHOW {k}")
        for k in ("server_version", "fsync", "synchronous_commit")
    }
    await conn.close()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": "python bench/queue_core.py " + " ".join(sys.argv[1:]),
        **server,
        "args": {**vars(a), "peers": peers, "out": str(a.out)},
        "drain": {p: [] for p in peers},
        "latency": {p: [] for p in peers},
    }
    for round_no in range(a.repeat):
        for peer in peers:
            for kind in ("drain", "latency"):
                r = await peer_round(a.dsn, peer, kind, a)
                results[kind][peer].append(r)
                print(f"round {round_no + 1} {peer:14} {kind:8} {json.dumps(r)}", flush=True)

    if not a.skip_extras:
        async with fresh_database(a.dsn, "claim") as dsn:
            migrate.upgrade(dsn)
            results["claim"] = [
                await claim_latency(dsn, 1000, 500),
                await claim_latency(dsn, a.finished_rows, 500),
            ]
            print("claim", results["claim"], flush=True)
        async with fresh_database(a.dsn, "submit") as dsn:
            migrate.upgrade(dsn)
            on = await submit_throughput(dsn, 16, 5.0, wake=True)
            off = await submit_throughput(dsn, 16, 5.0, wake=False)
            results["submit"] = [on, off]
            print("submit", results["submit"], flush=True)
        async with fresh_database(a.dsn, "hot") as dsn:
            migrate.upgrade(dsn)
            results["hot"] = await heartbeat_hot_share(dsn, 1000, 100)
            print("hot", results["hot"], flush=True)

    a.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (a.out / f"queue_core-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    text = render(results)
    (a.out / f"queue_core-{stamp}.md").write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    asyncio.run(main())

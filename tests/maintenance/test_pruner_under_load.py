"""The retention benchmark, small (bench/retention.py --runs 5000): the
pruner deletes a history of finished runs, their events, and expired
threads with their checkpoints while drainers claim new runs. Checked here:
what went and what stayed, that no drainer ever waited on the pruner, that
the pass held between windows still empties it, and that VACUUM reclaims
every dead tuple. Its timings are the benchmark's to report
(BENCHMARKS.md), never asserted. And that the bench's reading of the server
log's lock waits (--private-cluster) finds a real one."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from tests.support import pgcluster
from tests.support.procs import REPO
from tests.support.system import require_system

sys.path.insert(0, str(REPO / "bench"))
from retention_drain import LOCK_LOG, lock_waits  # noqa: E402

RUNS = 5_000


def test_the_pruner_empties_a_history_while_drainers_claim(admin_url: str, tmp_path: Path) -> None:
    out = tmp_path / "retention.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "retention.py"),
            "--dsn",
            admin_url,
            "--runs",
            str(RUNS),
            "--idle-seconds",
            "1",
            # Held every 0.2 s: the pass's pauses alone (at least 0.05 s
            # after each of its dozen batches) outlast the first window.
            "--ab-window",
            "0.2",
            "--control",
            "--output",
            str(out),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    r = json.loads(out.read_text())
    threads = RUNS // 10
    assert r["before"]["run_events"] == 3 * RUNS and r["before"]["checkpoints"] == 2 * threads
    # Every event; every run but each thread's newest (retention); then every
    # expired thread with that run, its checkpoints, blobs and writes.
    assert r["deleted"] == {
        "events": 3 * RUNS,
        "runs": RUNS - threads,
        "threads": threads,
        "batches": r["deleted"]["batches"],
    }
    for table in ("run_events", "checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert r["after"][table] == 0, table
    # What stays is the drainers' own: one thread per run they claimed.
    assert r["after"]["runs"] == r["after"]["threads"] > 0
    assert r["locks"]["samples"] > 0 and r["locks"]["waits_blocked_by_pruner"] == 0
    for table, stats in r["dead_after_vacuum"].items():
        assert stats["n_dead_tup"] == 0, (table, stats)
    # The pass was held, between batches, and still deleted everything.
    assert r["windows_paused"] >= 1
    # The same drain, over the same time, on an unpruned copy of the history.
    assert r["claims_control"]["n"] > 0


async def test_the_bench_reads_a_lock_wait_from_the_server_log(tmp_path: Path) -> None:
    require_system(
        pgcluster.pg15_bin_dir() is not None,
        "PostgreSQL 15 server binaries are needed (Debian: postgresql-15)",
    )
    cluster = pgcluster.start_cluster(tmp_path, settings=LOCK_LOG)
    try:
        holder = await asyncpg.connect(cluster.dsn())
        waiter = await asyncpg.connect(cluster.dsn(), server_settings={"application_name": "drain"})
        await holder.execute("CREATE TABLE held (x int)")
        hold = holder.transaction()
        await hold.start()
        await holder.execute("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        read = asyncio.create_task(waiter.fetchval("SELECT count(*) FROM held"))
        # The server logs the wait once it has lasted deadlock_timeout.
        deadline = time.monotonic() + 60
        while "still waiting for" not in cluster.log_file.read_text(errors="replace"):
            assert time.monotonic() < deadline, cluster.log_tail()
            await asyncio.sleep(0.05)
        await hold.rollback()
        assert await read == 0
        waits = await lock_waits(cluster.log_file, cluster.dsn())
        assert len(waits) == 1, waits
        assert "drain: LOG:" in waits[0] and "AccessShareLock on relation" in waits[0]
        assert "(held)" in waits[0] and "Process holding the lock" in waits[0]
        await holder.close()
        await waiter.close()
    finally:
        cluster.close()

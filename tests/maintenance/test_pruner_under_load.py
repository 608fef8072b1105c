"""The retention benchmark, small (bench/retention.py --runs 5000): the
pruner deletes a history of finished runs, their events, and expired
threads with their checkpoints while drainers claim new runs. Checked here:
what went and what stayed, that no drainer ever waited on the pruner, and
that VACUUM reclaims every dead tuple. Its timings are the benchmark's to
report (BENCHMARKS.md), never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.procs import REPO

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

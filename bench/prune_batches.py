"""What each kind of pruner batch costs alone: bench/retention.py's
history, then each batch function run flat out, one after another, with
nothing else on the server (no drain, no pause).

    python bench/prune_batches.py                # 1,000,000 finished runs
    python bench/prune_batches.py --runs 100000

For each kind (events, runs, expired threads): rows deleted, batches,
seconds, microseconds per row and milliseconds per batch. The batches are
the pruner's own SQL functions (migration 0012), called with the pruner's
batch sizes; the per-row figure is what retention.py's drain shares the
CPU with.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import benchdb  # noqa: E402
from retention import fill  # noqa: E402

from pgqueue.maintenance.pruner import PrunerConfig  # noqa: E402

# (kind, the function's call, the batch size; the cursor is $1)
DEFAULTS = PrunerConfig()
KINDS = [
    (
        "events",
        "SELECT * FROM pgqueue_prune_events('1 hour', $2, $1)",
        DEFAULTS.batch_size,
    ),
    (
        "runs",
        "SELECT * FROM pgqueue_prune_runs('30 days', $2, $1)",
        DEFAULTS.run_batch_size,
    ),
    (
        "threads",
        "SELECT * FROM pgqueue_prune_expired_threads($2, $1)",
        DEFAULTS.thread_batch_size,
    ),
]


async def measure(dsn: str, runs: int) -> dict[str, Any]:
    conn, fill_s = await fill(dsn, runs)
    result: dict[str, Any] = {"history_runs": runs, "fill_s": round(fill_s, 1)}
    try:
        for kind, call, size in KINDS:
            cursor, rows, batches = None, 0, 0
            t0 = time.perf_counter()
            while True:
                row = await conn.fetchrow(call, cursor, size)
                assert row is not None and row["mine"]
                deleted = row["deleted"]
                deleted = len(deleted) if isinstance(deleted, list) else deleted
                rows, batches = rows + deleted, batches + 1
                if deleted < size:
                    break
                cursor = row["reached"] or cursor
            took = time.perf_counter() - t0
            result[kind] = {
                "rows": rows,
                "batches": batches,
                "seconds": round(took, 1),
                "us_per_row": round(took / max(1, rows) * 1e6, 1),
                "ms_per_batch": round(took / batches * 1000, 1),
            }
    finally:
        await conn.close()
    return result


async def main() -> None:
    ap = benchdb.arg_parser(__doc__)
    ap.add_argument("--runs", type=int, default=1_000_000)
    a = ap.parse_args()
    async with benchdb.fresh_database(a.dsn, "prune_batches") as dsn:
        print(json.dumps(await measure(dsn, a.runs), indent=2))


if __name__ == "__main__":
    asyncio.run(main())

"""The dashboard's reads against a real database: runs submitted through the
queue, then back-dated (time is faked by the rows, never by sleeping).

The series is checked bucket by bucket against an oracle that recounts
from the timestamps the rows hold; the filter is checked by reading the
same rows as a user who may see only some threads.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.core.queue import Completion, NewRun
from pgqueue.errors import NotFound
from pgqueue.resources import dashboard
from pgqueue.resources.visibility import EVERYTHING, matching

WINDOW = dashboard.WINDOWS["5m"]


async def submit(pool: asyncpg.Pool, owner: str, **kwargs: Any) -> UUID:
    """A run on a thread of its own, owned by ``owner``."""
    [run] = await queue.submit(
        pool,
        [NewRun(thread_id=uuid.uuid4(), thread_metadata={"owner": owner}, **kwargs)],
        wake=False,
    )
    return run.run_id


async def backdate(pool: asyncpg.Pool, run_id: UUID, **fields: Any) -> None:
    """Sets a run's columns; ``*_ago`` values are seconds before now."""
    sets, args = [], [run_id]
    for name, value in fields.items():
        args.append(value)
        if name.endswith("_ago"):
            column = name.removesuffix("_ago")
            sets.append(f"{column} = now() - make_interval(secs => ${len(args)})")
        else:
            sets.append(f"{name} = ${len(args)}")
    await pool.execute(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = $1", *args)


def expected(series: list[dict[str, Any]], rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """Each bucket recounted from the rows: depth at the bucket's end, runs
    ended within it."""
    out = []
    for bucket in series:
        start: datetime = bucket["bucket_start"]
        end = start + (series[1]["bucket_start"] - series[0]["bucket_start"])
        left = [r["started_at"] or r["ended_at"] for r in rows]
        out.append(
            {
                "bucket_start": start,
                "pending": sum(
                    1
                    for r, gone in zip(rows, left, strict=True)
                    if r["created_at"] < end and not (gone is not None and gone < end)
                ),
                "running": sum(
                    1
                    for r in rows
                    if r["started_at"] is not None
                    and r["started_at"] < end
                    and not (r["ended_at"] is not None and r["ended_at"] < end)
                ),
                **{
                    status: sum(
                        1
                        for r in rows
                        if r["status"] == status
                        and r["ended_at"] is not None
                        and start <= r["ended_at"] < end
                    )
                    for status in dashboard.ENDED
                },
            }
        )
    return out


@pytest.fixture
async def runs(pool: asyncpg.Pool) -> dict[str, UUID]:
    """Runs of two owners in every state, spread over (and before) the
    window, and one worker that heartbeats and one that is gone."""
    ids = {
        "done": await submit(pool, "a"),
        "failed": await submit(pool, "a"),
        "waiting": await submit(pool, "b"),
        "old": await submit(pool, "a"),
        "abandoned": await submit(pool, "b"),
        "cancelled": await submit(pool, "a"),
        "working": await submit(pool, "a"),
    }
    await backdate(
        pool, ids["done"], status="success", created_at_ago=100, started_at_ago=90, ended_at_ago=80
    )
    error = json.dumps({"error": "ValueError", "message": "the node failed on purpose"})
    await backdate(
        pool,
        ids["failed"],
        status="error",
        attempt=1,
        error=error,
        created_at_ago=70,
        started_at_ago=60,
        ended_at_ago=50,
    )
    await backdate(pool, ids["waiting"], created_at_ago=40)
    await backdate(
        pool,
        ids["old"],
        status="success",
        created_at_ago=7300,
        started_at_ago=7290,
        ended_at_ago=7200,
    )
    # Running for minutes, silent for an hour: its lease ran out.
    await backdate(
        pool,
        ids["abandoned"],
        status="running",
        attempt=1,
        worker_id="gone-worker",
        created_at_ago=600,
        started_at_ago=480,
        heartbeat_at_ago=3600,
    )
    await backdate(pool, ids["cancelled"], status="interrupted", created_at_ago=30, ended_at_ago=20)
    await backdate(
        pool,
        ids["working"],
        status="running",
        attempt=1,
        worker_id="live-worker",
        created_at_ago=15,
        started_at_ago=10,
        heartbeat_at_ago=0,
    )
    await pool.execute(
        "INSERT INTO workers (worker_id, host, pid, concurrency) VALUES ('live-worker', 'h', 1, 4)"
    )
    return ids


async def owned_by(pool: asyncpg.Pool, owner: str | None) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT r.status, r.created_at, r.started_at, r.ended_at FROM runs r "
        "JOIN threads t USING (thread_id) WHERE $1::text IS NULL OR t.metadata->>'owner' = $1",
        owner,
    )


async def test_the_series_recounts_the_runs_timestamps(
    pool: asyncpg.Pool, runs: dict[str, UUID]
) -> None:
    found = await dashboard.overview(pool, WINDOW, EVERYTHING)
    series = found["series"]
    assert len(series) == WINDOW.buckets
    got = [
        {k: b[k] for k in ("bucket_start", "pending", "running", *dashboard.ENDED)} for b in series
    ]
    assert got == expected(series, await owned_by(pool, None))
    # The run that ended two hours ago is in no bucket; the abandoned one,
    # started before the window, runs through all of it.
    assert found["ended"] == {"success": 1, "error": 1, "timeout": 0, "interrupted": 1}
    assert all(b["running"] >= 1 for b in series)
    assert series[-1]["pending"] == 1 and series[-1]["running"] == 2
    assert found["live"]["ready"] == 1 and found["live"]["running"] == 2


async def test_workers_hold_their_runs_and_the_stale_one_is_shown(
    pool: asyncpg.Pool, runs: dict[str, UUID]
) -> None:
    found = await dashboard.overview(pool, WINDOW, EVERYTHING)
    workers = {w["worker_id"]: w for w in found["workers"]}
    assert workers.keys() == {"live-worker", "gone-worker"}
    live = workers["live-worker"]
    assert live["registered"] and live["alive"]
    assert [r["run_id"] for r in live["runs"]] == [runs["working"]]
    assert live["runs"][0]["held_seconds"] >= 10 and not live["runs"][0]["stale"]
    gone = workers["gone-worker"]
    assert not gone["registered"]
    assert [r["run_id"] for r in gone["runs"]] == [runs["abandoned"]]
    assert gone["runs"][0]["lease_age_seconds"] >= 3600 and gone["runs"][0]["stale"]
    assert [s["run_id"] for s in found["stale"]] == [runs["abandoned"]]
    [failure] = found["failures"]
    assert failure["run_id"] == runs["failed"]
    assert failure["error_type"] == "ValueError"
    assert failure["error_message"] == "the node failed on purpose"
    recent = {r["run_id"] for r in found["recent"]}
    assert recent == set(runs.values()) - {runs["old"]}


async def test_a_filtered_user_sees_their_runs_only(
    pool: asyncpg.Pool, runs: dict[str, UUID]
) -> None:
    as_b = await dashboard.overview(pool, WINDOW, matching({"owner": "b"}))
    series = as_b["series"]
    got = [
        {k: b[k] for k in ("bucket_start", "pending", "running", *dashboard.ENDED)} for b in series
    ]
    assert got == expected(series, await owned_by(pool, "b"))
    assert as_b["ended"] == {"success": 0, "error": 0, "timeout": 0, "interrupted": 0}
    assert as_b["failures"] == []
    assert {r["run_id"] for r in as_b["recent"]} == {runs["waiting"], runs["abandoned"]}
    # The live worker holds only a's run: b sees the worker, not the run.
    workers = {w["worker_id"]: w for w in as_b["workers"]}
    assert workers["live-worker"]["runs"] == []
    as_nobody = await dashboard.overview(pool, WINDOW, matching({"owner": "c"}))
    assert as_nobody["stale"] == [] and as_nobody["recent"] == []
    assert as_nobody["live"]["ready"] == 0 and as_nobody["live"]["running"] == 0
    assert [w["worker_id"] for w in as_nobody["workers"]] == ["live-worker"]
    with pytest.raises(NotFound):
        await dashboard.timeline(pool, runs["done"], matching({"owner": "b"}))


async def test_a_runs_timeline_has_each_attempts_events_and_checkpoints(
    pool: asyncpg.Pool,
) -> None:
    run_id = await submit(pool, "a", max_attempts=3)
    [thread_id] = [r["thread_id"] for r in await pool.fetch("SELECT thread_id FROM runs")]
    [first] = await queue.claim(pool, "worker-one", 1)
    error = {"error": "RetriableError", "message": "upstream hiccup"}
    retried = Completion(run_id, first.attempt, "error", error=error, retry_delay=0)
    assert await queue.complete(pool, "worker-one", [retried]) == {run_id: "pending"}
    [second] = await queue.claim(pool, "worker-two", 1)
    assert second.attempt == 2
    events = [(1, 1, "metadata"), (1, 2, "values"), (1, 3, "values"), (2, 4, "values")]
    await pool.executemany(
        "INSERT INTO run_events (run_id, seq, attempt, event, data) VALUES ($1, $2, $3, $4, '{}')",
        [(run_id, seq, attempt, event) for attempt, seq, event in events],
    )
    checkpoints = [("c1", 1, run_id), ("c2", 2, run_id), ("c3", 2, run_id), ("c0", 1, uuid.uuid4())]
    await pool.executemany(
        "INSERT INTO checkpoints (thread_id, checkpoint_id, checkpoint, metadata) "
        "VALUES ($1, $2, '{}', jsonb_build_object('run_id', $3::text, 'run_attempt', $4::int, "
        "'source', 'loop', 'step', 0))",
        [(str(thread_id), cid, str(rid), attempt) for cid, attempt, rid in checkpoints],
    )
    done = Completion(run_id, 2, "success", output={"ok": True})
    assert await queue.complete(pool, "worker-two", [done]) == {run_id: "success"}

    found = await dashboard.timeline(pool, run_id, EVERYTHING)
    assert found["run"]["status"] == "success" and found["run"]["attempt"] == 2
    one, two = found["attempts"]
    assert (one["attempt"], one["worker_id"], one["outcome"]) == (1, None, "retried or requeued")
    assert (one["events"], one["event_kinds"], one["checkpoints"]) == (
        3,
        ["metadata", "values"],
        ["c1"],
    )
    assert (two["attempt"], two["worker_id"], two["outcome"]) == (2, "worker-two", "success")
    assert (two["events"], two["checkpoints"]) == (1, ["c2", "c3"])
    assert two["claimed_at"] is not None and two["ended_at"] is not None
    assert found["events"]["total"] == 4
    assert found["checkpoints"]["total"] == 3
    assert [c["checkpoint_id"] for c in found["checkpoints"]["items"]] == ["c1", "c2", "c3"]
    with pytest.raises(NotFound):
        await dashboard.timeline(pool, uuid.uuid4(), EVERYTHING)

"""The cron scheduler's ``run_once`` against a real database: time is faked
by back-dating ``next_run_at``, never by sleeping."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from pgqueue.core import queue
from pgqueue.db.sql import queries
from pgqueue.errors import Invalid
from pgqueue.execution.graphs import GraphRegistry, load_config, system_assistant_id
from pgqueue.resources import crons, runs
from pgqueue.resources.scheduler import Scheduler, SchedulerConfig
from pgqueue.resources.visibility import EVERYTHING
from server.routes.crons import cron_run_request
from tests.support.procs import GRAPHS_CONFIG

# No Auth: a run may reach any thread and assistant.
OPEN = {"thread_visible": EVERYTHING, "assistant_visible": EVERYTHING}


@pytest.fixture
async def registry(pool: asyncpg.Pool) -> GraphRegistry:
    registry = load_config(GRAPHS_CONFIG)
    ids = registry.assistant_ids
    await pool.execute(queries.upsert_system_assistants, list(ids), list(ids.values()))
    return registry


def scheduler(pool: asyncpg.Pool, registry: GraphRegistry) -> Scheduler:
    return Scheduler(pool, registry, cron_run_request, SchedulerConfig(interval=60))


async def new_cron(
    pool: asyncpg.Pool,
    schedule: str = "* * * * *",
    thread_id: UUID | None = None,
    end_time: datetime | None = None,
    graph: str = "echo",
    **payload: Any,
) -> UUID:
    cron = await crons.create(
        pool,
        crons.NewCron(
            assistant_id=system_assistant_id(graph),
            thread_id=thread_id,
            schedule=schedule,
            payload={"assistant_id": graph, "input": {"count": 0}, **payload},
            end_time=end_time,
        ),
        thread_visible=EVERYTHING,
    )
    return cron["cron_id"]  # type: ignore[no-any-return]


async def make_due(pool: asyncpg.Pool, cron_id: UUID) -> None:
    await pool.execute(
        "UPDATE crons SET next_run_at = now() - interval '1 minute' WHERE cron_id = $1", cron_id
    )


async def cron_runs(pool: asyncpg.Pool, cron_id: UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT run_id, thread_id, status, metadata, kwargs FROM runs "
        "WHERE metadata->>'cron_id' = $1 ORDER BY seq",
        str(cron_id),
    )


async def new_thread(pool: asyncpg.Pool) -> UUID:
    thread_id = uuid4()
    await pool.execute("INSERT INTO threads (thread_id) VALUES ($1)", thread_id)
    return thread_id


async def this_minute(pool: asyncpg.Pool) -> datetime:
    return await pool.fetchval("SELECT date_trunc('minute', now())")  # type: ignore[no-any-return]


async def test_a_due_cron_fires_once_and_moves_to_its_next_tick(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    # "Not due yet" and "the tick is spent" hold while the minute it was
    # made in lasts: a minute turning during a pass makes its fresh tick due.
    # Only then is the pass tried again, on a new cron (starting just inside
    # a minute, it cannot meet another turn unless it takes a minute).
    for _ in range(2):
        started = await this_minute(pool)
        try:
            await fires_once_and_moves_on(pool, registry)
            return
        except AssertionError:
            if await this_minute(pool) == started:
                raise
        await pool.execute("DELETE FROM crons")
    raise AssertionError("a minute turned during each pass")


async def fires_once_and_moves_on(pool: asyncpg.Pool, registry: GraphRegistry) -> None:
    sched = scheduler(pool, registry)
    cron_id = await new_cron(pool, on_completion="keep", metadata={"team": "a"})
    assert (await sched.run_once()).fired == []  # not due yet

    await make_due(pool, cron_id)
    result = await sched.run_once()
    assert len(result.fired) == 1
    [run] = await cron_runs(pool, cron_id)
    assert run["run_id"] == result.fired[0]
    assert json.loads(run["metadata"]) == {"team": "a", "cron_id": str(cron_id)}
    assert json.loads(run["kwargs"])["input"] == {"count": 0}
    # A stateless cron's thread is new, has its first run's metadata (as
    # any thread a run creates, on the platform too) and says which cron
    # made it.
    thread_meta = await pool.fetchval(
        "SELECT metadata FROM threads WHERE thread_id = $1", run["thread_id"]
    )
    echo = {"graph_id": "echo", "assistant_id": str(system_assistant_id("echo"))}
    assert json.loads(thread_meta) == {"team": "a", "cron_id": str(cron_id), **echo}

    row = await pool.fetchrow(
        "SELECT next_run_at, now() AS now FROM crons WHERE cron_id = $1", cron_id
    )
    assert row["now"] < row["next_run_at"] <= row["now"] + timedelta(minutes=1)
    assert row["next_run_at"].second == 0 and row["next_run_at"].microsecond == 0
    assert (await sched.run_once()).fired == []  # the tick is spent


async def test_concurrent_passes_fire_each_tick_exactly_once(
    database_url: str, pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    # Five schedulers, each with its own pool, as five server processes.
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(5)]
    try:
        schedulers = [scheduler(p, registry) for p in pools]
        cron_id = await new_cron(pool, on_completion="keep")
        for tick in range(1, 6):
            await make_due(pool, cron_id)
            results = await asyncio.gather(*(s.run_once() for s in schedulers))
            assert sum(len(r.fired) for r in results) == 1
            assert len(await cron_runs(pool, cron_id)) == tick
    finally:
        await asyncio.gather(*(p.close() for p in pools))


async def test_a_cron_past_its_end_time_is_deleted_without_firing(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    cron_id = await new_cron(pool, end_time=datetime.now(UTC) + timedelta(hours=1))
    await pool.execute(
        "UPDATE crons SET next_run_at = now() - interval '1 minute', "
        "end_time = now() - interval '2 minutes' WHERE cron_id = $1",
        cron_id,
    )
    result = await scheduler(pool, registry).run_once()
    assert result.fired == [] and result.ended == [cron_id]
    assert await pool.fetchval("SELECT count(*) FROM crons") == 0
    assert await cron_runs(pool, cron_id) == []


async def test_the_last_tick_before_end_time_fires_then_the_cron_is_deleted(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    schedule = "0 0 1 * *"  # midnight (UTC) on the first of each month
    # The end falls one second before the tick after the one we fire: the
    # first of next month, worked out here, not by crons.next_run.
    now = datetime.now(UTC)
    next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    end = next_month - timedelta(seconds=1)
    cron_id = await new_cron(pool, schedule=schedule, end_time=end)
    await make_due(pool, cron_id)
    result = await scheduler(pool, registry).run_once()
    assert len(result.fired) == 1 and result.ended == [cron_id]
    assert await pool.fetchval("SELECT count(*) FROM crons") == 0


async def test_a_disabled_cron_moves_on_without_firing(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    cron_id = await new_cron(pool, enabled=False)
    await make_due(pool, cron_id)
    result = await scheduler(pool, registry).run_once()
    assert result.fired == [] and result.skipped == [cron_id]
    assert await pool.fetchval("SELECT next_run_at > now() FROM crons WHERE cron_id = $1", cron_id)


async def test_a_refused_run_skips_the_tick_and_keeps_the_cron(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    thread_id = await new_thread(pool)
    # The thread is busy and the cron rejects concurrent runs.
    await queue.submit(pool, [queue.NewRun(thread_id=thread_id, assistant_id=None)])
    busy = await new_cron(pool, thread_id=thread_id, multitask_strategy="reject")
    # A payload that no longer validates as a run request.
    broken = await new_cron(pool, stream_mode="no-such-mode")
    # An assistant that is gone.
    orphan = (
        await crons.create(
            pool,
            crons.NewCron(assistant_id=uuid4(), thread_id=None, schedule="* * * * *", payload={}),
            thread_visible=EVERYTHING,
        )
    )["cron_id"]
    fine = await new_cron(pool, on_completion="keep")
    for cron_id in (busy, broken, orphan, fine):
        await make_due(pool, cron_id)

    result = await scheduler(pool, registry).run_once()
    assert sorted(result.skipped) == sorted([busy, broken, orphan])
    assert len(result.fired) == 1 and len(await cron_runs(pool, fine)) == 1
    assert await pool.fetchval("SELECT count(*) FROM crons WHERE next_run_at > now()") == 4


async def test_a_thread_cron_runs_on_its_thread_and_goes_with_it(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    thread_id = await new_thread(pool)
    cron_id = await new_cron(pool, thread_id=thread_id)
    await make_due(pool, cron_id)
    await scheduler(pool, registry).run_once()
    [run] = await cron_runs(pool, cron_id)
    assert run["thread_id"] == thread_id

    await pool.execute("DELETE FROM threads WHERE thread_id = $1", thread_id)
    assert await pool.fetchval("SELECT count(*) FROM crons") == 0


async def test_temporary_threads_are_deleted_once_their_run_ends(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    sched = scheduler(pool, registry)
    temporary = await new_cron(pool)  # on_completion defaults to delete
    kept = await new_cron(pool, on_completion="keep")
    await make_due(pool, temporary)
    await make_due(pool, kept)
    await sched.run_once()
    [gone] = await cron_runs(pool, temporary)
    [stays] = await cron_runs(pool, kept)

    # Still running: nothing to delete yet.
    assert (await sched.run_once()).threads_deleted == 0
    # The runs end (as a worker's final write would leave them).
    await pool.execute(
        "UPDATE runs SET status = 'success', ended_at = now() WHERE run_id = ANY($1::uuid[])",
        [gone["run_id"], stays["run_id"]],
    )
    await pool.execute(
        "UPDATE threads SET status = 'idle' WHERE thread_id = ANY($1::uuid[])",
        [gone["thread_id"], stays["thread_id"]],
    )
    assert (await sched.run_once()).threads_deleted == 1
    remaining = await pool.fetch("SELECT thread_id FROM threads")
    assert [r["thread_id"] for r in remaining] == [stays["thread_id"]]


async def test_a_stateless_runs_thread_left_by_a_dead_server_goes_after_the_grace(
    pool: asyncpg.Pool, registry: GraphRegistry
) -> None:
    """POST /runs with on_completion=delete: the serving process deletes the
    thread once the run ends. Here nobody does (that process died), so the
    scheduler's pass must, but only once the grace has passed: a live server
    may still be sending the run's result from it."""
    sched = Scheduler(
        pool, registry, cron_run_request, SchedulerConfig(interval=60, stateless_grace=300)
    )
    orphan = await runs.create(pool, registry, runs.RunRequest("echo", None, **OPEN))
    recent = await runs.create(pool, registry, runs.RunRequest("echo", None, **OPEN))
    kept = await runs.create(
        pool, registry, runs.RunRequest("echo", None, on_completion="keep", **OPEN)
    )
    ours = [orphan, recent, kept]
    tags = await pool.fetch(
        "SELECT thread_id, metadata FROM threads WHERE thread_id = ANY($1::uuid[])",
        [r["thread_id"] for r in ours],
    )
    # (Every run names its graph and assistant in its thread's metadata.)
    echo = {"graph_id": "echo", "assistant_id": str(system_assistant_id("echo"))}
    assert {r["thread_id"]: json.loads(r["metadata"]) for r in tags} == {
        orphan["thread_id"]: {"on_completion": "delete", **echo},
        recent["thread_id"]: {"on_completion": "delete", **echo},
        kept["thread_id"]: echo,
    }
    # Still pending: nothing to delete.
    assert (await sched.run_once()).threads_deleted == 0
    # All end (as a worker's final write leaves them): the orphan's run ten
    # minutes ago, the others just now.
    for run, ended in (
        (orphan, "now() - interval '10 minutes'"),
        (recent, "now()"),
        (kept, "now()"),
    ):
        await pool.execute(
            f"UPDATE runs SET status = 'success', ended_at = {ended} WHERE run_id = $1",
            run["run_id"],
        )
        await pool.execute(
            "UPDATE threads SET status = 'idle' WHERE thread_id = $1", run["thread_id"]
        )
    assert (await sched.run_once()).threads_deleted == 1
    left = await pool.fetch(
        "SELECT thread_id FROM threads WHERE thread_id = ANY($1::uuid[])",
        [r["thread_id"] for r in ours],
    )
    assert {r["thread_id"] for r in left} == {recent["thread_id"], kept["thread_id"]}
    assert await pool.fetchval("SELECT count(*) FROM runs WHERE run_id = $1", orphan["run_id"]) == 0


def test_schedules_are_read_in_utc_unless_a_timezone_is_given() -> None:
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert crons.next_run("0 9 * * *", after) == datetime(2026, 7, 2, 9, 0, tzinfo=UTC)
    # 09:00 in New York is 13:00 UTC in summer and 14:00 UTC in winter.
    assert crons.next_run("0 9 * * *", after, "America/New_York") == datetime(
        2026, 7, 1, 13, 0, tzinfo=UTC
    )
    winter = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert crons.next_run("0 9 * * *", winter, "America/New_York") == datetime(
        2026, 12, 1, 14, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ("", "empty"),
        ("* * * *", "4 fields"),
        ("* * * * * *", "6 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 0 30 2 *", "cannot be scheduled"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(schedule: str, says: str) -> None:
    with pytest.raises(Invalid) as caught:
        crons.check_schedule(schedule)
    assert caught.value.field == "schedule"
    assert says in caught.value.problem


def test_aliases_are_schedules() -> None:
    assert crons.check_schedule(" @hourly ") == "@hourly"

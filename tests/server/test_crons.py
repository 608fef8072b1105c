"""Crons over HTTP, driven by the official SDK; the schedule is made due by
back-dating ``next_run_at`` in the database, never by waiting a minute."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from tests.support.server import ServerProcess, server_process
from tests.support.waiting import eventually

CRON_FIELDS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
}


# Tests fire crons by back-dating them (make_due): a yearly schedule never
# fires on its own while a test runs, as a minutely one would when the test
# crosses a minute boundary (one tick more than the test made due).
YEARLY = "0 0 1 1 *"
# The platform's system assistant id of graph "echo": uuid5 of the graph id in
# its namespace 6ba7b821-9dad-11d1-80b4-00c04fd430c8, written out.
ECHO_ID = "046b5dc7-2108-582c-9c6c-31d556d138f0"


async def make_due(db: asyncpg.Pool, cron_id: str) -> None:
    await db.execute(
        "UPDATE crons SET next_run_at = now() - interval '1 minute' WHERE cron_id = $1",
        UUID(cron_id),
    )


async def runs_of(db: asyncpg.Pool, cron_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT run_id, thread_id, status, output FROM runs "
        "WHERE metadata->>'cron_id' = $1 ORDER BY seq",
        cron_id,
    )


async def new_thread(db: asyncpg.Pool) -> str:
    # Straight into the table: this module tests crons, not the threads API.
    thread_id = uuid4()
    await db.execute("INSERT INTO threads (thread_id) VALUES ($1)", thread_id)
    return str(thread_id)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_create_search_count_update_delete(client: LangGraphClient) -> None:
    crons = client.crons
    tag = {"suite": uuid4().hex}
    before = datetime.now(UTC)
    cron: Any = await crons.create(
        "echo",
        schedule="*/5 * * * *",
        input={"count": 1},
        metadata=tag,
        on_run_completed="keep",
    )
    assert set(cron) == CRON_FIELDS
    assert cron["assistant_id"] == ECHO_ID
    assert cron["thread_id"] is None and cron["user_id"] is None
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["payload"]["input"] == {"count": 1}
    assert cron["metadata"] == tag
    assert cron["on_run_completed"] == "keep" and cron["enabled"] is True
    # The first 5-minute mark after the cron was made, somewhere between
    # before and after: a minute turning meanwhile cannot break this.
    due = when(cron["next_run_date"])
    after = datetime.now(UTC)
    assert before < due <= after + timedelta(minutes=5) and due.minute % 5 == 0

    found = await crons.search(assistant_id="echo", metadata=tag)
    assert [c["cron_id"] for c in found] == [cron["cron_id"]]
    assert await crons.search(assistant_id=ECHO_ID, metadata=tag)
    assert await crons.search(assistant_id="no-such-graph", metadata=tag) == []
    assert await crons.count(metadata=tag) == 1
    assert await crons.count(assistant_id="echo", metadata=tag) == 1
    picked = await crons.search(metadata=tag, select=["cron_id", "schedule"])
    assert picked == [{"cron_id": cron["cron_id"], "schedule": "*/5 * * * *"}]

    end = datetime.now(UTC) + timedelta(days=3)
    changed: Any = await crons.update(
        cron["cron_id"],
        schedule="0 9 * * *",
        timezone="Europe/Paris",
        enabled=False,
        end_time=end,
        input={"count": 2},
    )
    assert changed["schedule"] == "0 9 * * *" and changed["timezone"] == "Europe/Paris"
    assert changed["enabled"] is False
    assert when(changed["end_time"]) == end
    assert changed["payload"]["input"] == {"count": 2}
    assert changed["metadata"] == tag  # untouched fields stay
    paris = when(changed["next_run_date"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (9, 0)
    assert await crons.search(metadata=tag, enabled=False)
    assert await crons.search(metadata=tag, enabled=True) == []
    cleared: Any = await crons.update(cron["cron_id"], end_time=None)
    assert cleared["end_time"] is None

    await crons.delete(cron["cron_id"])
    assert await crons.count(metadata=tag) == 0
    with pytest.raises(NotFoundError):
        await crons.delete(cron["cron_id"])
    with pytest.raises(NotFoundError):
        await crons.update(cron["cron_id"], schedule="* * * * *")


async def test_search_sorts_and_pages(client: LangGraphClient) -> None:
    tag = {"suite": uuid4().hex}
    made = [
        await client.crons.create("echo", schedule=f"{m} * * * *", metadata=tag)
        for m in (30, 10, 20)
    ]
    ids = [c["cron_id"] for c in made]
    newest_first = await client.crons.search(metadata=tag)
    assert [c["cron_id"] for c in newest_first] == ids[::-1]
    by_next = await client.crons.search(metadata=tag, sort_by="next_run_date", sort_order="asc")
    dates = [when(c["next_run_date"]) for c in by_next]
    assert dates == sorted(dates)
    page = await client.crons.search(
        metadata=tag, sort_by="created_at", sort_order="asc", limit=2, offset=1
    )
    assert [c["cron_id"] for c in page] == ids[1:]


async def test_thread_crons(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(db)
    cron: Any = await client.crons.create_for_thread(
        thread_id, "echo", schedule="@hourly", input={"count": 0}, multitask_strategy="enqueue"
    )
    assert cron["thread_id"] == thread_id and cron["on_run_completed"] is None
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread_id)] == [
        cron["cron_id"]
    ]
    assert await client.crons.count(thread_id=thread_id) == 1

    await make_due(db, cron["cron_id"])
    [run] = await eventually(lambda: runs_of(db, cron["cron_id"]), what="the cron's run")
    assert str(run["thread_id"]) == thread_id

    with pytest.raises(NotFoundError) as missing:
        await client.crons.create_for_thread(str(uuid4()), "echo", schedule="* * * * *")
    assert "thread" in missing.value.response.json()["detail"]


async def test_a_due_cron_runs_and_its_run_finishes(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    cron: Any = await client.crons.create(
        "echo", schedule=YEARLY, input={"count": 41}, on_run_completed="keep"
    )
    await make_due(db, cron["cron_id"])

    async def finished() -> asyncpg.Record | None:
        found = await runs_of(db, cron["cron_id"])
        return found[0] if found and found[0]["status"] == "success" else None

    run = await eventually(finished, timeout=30, what="the cron's run to succeed")
    assert json.loads(run["output"]) == {"count": 42}
    # The thread was kept and says which cron made it.
    meta = await db.fetchval("SELECT metadata FROM threads WHERE thread_id = $1", run["thread_id"])
    assert json.loads(meta)["cron_id"] == cron["cron_id"]
    await client.crons.delete(cron["cron_id"])


async def test_a_stateless_cron_deletes_each_thread_after_its_run(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    cron: Any = await client.crons.create("echo", schedule=YEARLY, input={"count": 0})
    assert cron["on_run_completed"] == "delete"
    await make_due(db, cron["cron_id"])
    [run] = await eventually(lambda: runs_of(db, cron["cron_id"]), timeout=30, what="a run")

    async def thread_gone() -> bool:
        return not await db.fetchval(
            "SELECT count(*) FROM threads WHERE thread_id = $1", run["thread_id"]
        )

    await eventually(thread_gone, timeout=30, what="the temporary thread to be deleted")
    await client.crons.delete(cron["cron_id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"schedule": "not a cron"}, "schedule"),
        ({"schedule": "* * * * * *"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule": "* * * * *", "timezone": "Europe"}, "timezone"),
        ({"schedule": "* * * * *", "end_time": "2001-01-01T00:00:00Z"}, "end_time"),
        ({"schedule": "* * * * *", "stream_mode": "nope"}, "stream_mode"),
        ({"schedule": "* * * * *", "multitask_strategy": "never"}, "multitask_strategy"),
        ({"schedule": "* * * * *", "webhook": "ftp://x"}, "webhook"),
        ({"schedule": "* * * * *", "command": {"resume": 1}}, "command"),
        ({}, "schedule"),
    ],
)
def test_create_refuses_bad_crons_naming_the_field(
    server: ServerProcess, body: dict[str, Any], field: str
) -> None:
    response = httpx.post(server.url + "/runs/crons", json={"assistant_id": "echo", **body})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(field), response.json()


async def test_unknown_assistants_and_crons(client: LangGraphClient, server: ServerProcess) -> None:
    with pytest.raises(NotFoundError):
        await client.crons.create("no-such-graph", schedule="* * * * *")
    with pytest.raises(NotFoundError):
        await client.crons.create(str(uuid4()), schedule="* * * * *")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.delete("not-a-uuid")
    with pytest.raises(UnprocessableEntityError):
        await client.crons.update(str(uuid4()), schedule="bad")
    bad_search = httpx.post(server.url + "/runs/crons/search", json={"sort_by": "colour"})
    assert bad_search.status_code == 422
    assert bad_search.json()["detail"].startswith("sort_by")


async def test_two_processes_fire_each_tick_once(
    client: LangGraphClient, db: asyncpg.Pool, module_database_url: str
) -> None:
    cron: Any = await client.crons.create(
        "echo", schedule=YEARLY, input={"count": 0}, on_run_completed="keep"
    )
    # A second server on the same database, scheduling every 50 ms, races
    # the module's server for every tick.
    with server_process(
        module_database_url, command="server", env={"PGQUEUE_SCHEDULER_SECONDS": "0.05"}
    ):
        for tick in range(1, 6):
            await make_due(db, cron["cron_id"])

            async def fired() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT next_run_at > now() FROM crons WHERE cron_id = $1",
                        UUID(cron["cron_id"]),
                    )
                )

            await eventually(fired, timeout=15, what=f"tick {tick} to fire")
            assert len(await runs_of(db, cron["cron_id"])) == tick
    await client.crons.delete(cron["cron_id"])


def test_crons_are_in_the_openapi_document(server: ServerProcess) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert "post" in paths["/runs/crons"]
    assert "post" in paths["/threads/{thread_id}/runs/crons"]
    assert {"patch", "delete"} <= set(paths["/runs/crons/{cron_id}"])
    assert "post" in paths["/runs/crons/search"] and "post" in paths["/runs/crons/count"]

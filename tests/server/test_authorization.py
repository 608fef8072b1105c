"""Authorization (langgraph_sdk.Auth's ``@auth.on`` handlers), driven by the
official SDK as two users who must not see each other's data: threads, runs
and crons, refusals, and ids that belong to another user.

The server's Auth is tests/graphs/auth/owners.py (``owners_server`` in
tests/server/conftest.py): it stamps the creator as ``metadata["owner"]``
and filters every read by it (assistants also show the system ones),
prefixes store namespaces with the user, refuses user "denied" (the handler
returns False) and fails for user "broken" (the handler raises). Each test
has users of its own, so what a user sees is exactly what the test made.
tests/server/test_authorization_handlers.py has assistants, the store and
the other Auths; tests/server/test_authorization_walk.py sends every route
in the API as the wrong user.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.two_users import SYSTEM_ASSISTANT, YEARLY, drain, ids, status_of
from tests.support.waiting import eventually

# -- reading: each user sees its own ------------------------------------------


async def test_each_user_sees_only_its_own_threads_and_runs(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    ta = await ca.threads.create(metadata={"topic": "mine"})
    tb = await cb.threads.create()
    # The owner is stamped on create, next to what the user gave.
    assert ta["metadata"] == {"topic": "mine", "owner": a}
    assert tb["metadata"]["owner"] == b
    a_tid, b_tid = ta["thread_id"], tb["thread_id"]

    assert await ca.runs.wait(a_tid, "whoami", input={}) == {"user": a, "permissions": []}
    [done] = await ca.runs.list(a_tid)
    assert done["metadata"]["owner"] == a
    # A run that stays pending (due in an hour), to try cancelling.
    pending_thread = (await ca.threads.create())["thread_id"]
    pending = await ca.runs.create(pending_thread, "whoami", input={}, after_seconds=3600)

    assert ids(await ca.threads.search(limit=100), "thread_id") == {a_tid, pending_thread}
    assert ids(await cb.threads.search(limit=100), "thread_id") == {b_tid}
    assert await ca.threads.count() == 2
    assert await cb.threads.count() == 1
    # Asking for a's explicitly finds nothing either.
    assert await cb.threads.search(metadata={"owner": a}) == []
    assert await cb.threads.count(metadata={"owner": a}) == 0
    assert await cb.threads.search(values={"user": a}) == []
    assert await cb.threads.search(ids=[a_tid, pending_thread]) == []

    before = await ca.threads.get(a_tid)
    state_before = await ca.threads.get_state(a_tid)
    runs_before = await ca.runs.list(a_tid)
    # Every way b can name a's thread or runs answers as for a missing one.
    refused = {
        "threads.get": cb.threads.get(a_tid),
        "threads.get_state": cb.threads.get_state(a_tid),
        "threads.get_history": cb.threads.get_history(a_tid),
        "threads.update": cb.threads.update(a_tid, metadata={"topic": "b's"}),
        "threads.update_state": cb.threads.update_state(a_tid, {"user": b}),
        "threads.copy": cb.threads.copy(a_tid),
        "threads.delete": cb.threads.delete(a_tid),
        "runs.list": cb.runs.list(a_tid),
        "runs.get": cb.runs.get(a_tid, done["run_id"]),
        "runs.join": cb.runs.join(a_tid, done["run_id"]),
        "runs.join_stream": drain(cb.runs.join_stream(a_tid, done["run_id"])),
        "runs.join pending": cb.runs.join(pending_thread, pending["run_id"]),
        "runs.cancel": cb.runs.cancel(pending_thread, pending["run_id"]),
        "runs.delete": cb.runs.delete(a_tid, done["run_id"]),
        "runs.create": cb.runs.create(a_tid, "whoami", input={}),
        "runs.wait": cb.runs.wait(a_tid, "whoami", input={}),
        "runs.stream": drain(cb.runs.stream(a_tid, "whoami", input={})),
        # a's run on b's own thread: no such run there.
        "runs.get on b's thread": cb.runs.get(b_tid, done["run_id"]),
    }
    statuses = {name: await status_of(call) for name, call in refused.items()}
    assert statuses == dict.fromkeys(refused, 404)

    assert await ca.threads.get(a_tid) == before
    assert await ca.threads.get_state(a_tid) == state_before
    assert await ca.runs.list(a_tid) == runs_before
    assert (await ca.runs.get(pending_thread, pending["run_id"]))["status"] == "pending"
    # b's cancel-many of everything live leaves a's run alone.
    await cb.runs.cancel_many(status="all")
    assert (await ca.runs.get(pending_thread, pending["run_id"]))["status"] == "pending"
    await ca.runs.cancel(pending_thread, pending["run_id"])


async def test_each_user_sees_only_its_own_crons(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    a_tid = (await ca.threads.create())["thread_id"]
    b_tid = (await cb.threads.create())["thread_id"]
    a_asst = (await ca.assistants.create("whoami"))["assistant_id"]
    on_thread = await ca.crons.create_for_thread(
        a_tid, "whoami", schedule=YEARLY, input={}, metadata={"k": 1}
    )
    stateless = await ca.crons.create(a_asst, schedule=YEARLY, input={})
    assert on_thread["metadata"] == {"k": 1, "owner": a}
    assert stateless["metadata"]["owner"] == a
    b_cron = await cb.crons.create("whoami", schedule=YEARLY, input={})

    a_crons = {on_thread["cron_id"], stateless["cron_id"]}
    assert ids(await ca.crons.search(limit=100), "cron_id") == a_crons
    assert ids(await cb.crons.search(limit=100), "cron_id") == {b_cron["cron_id"]}
    assert await ca.crons.count() == 2
    assert await cb.crons.count() == 1
    assert await cb.crons.search(thread_id=a_tid) == []
    assert await cb.crons.count(thread_id=a_tid) == 0
    assert await cb.crons.search(metadata={"owner": a}) == []
    assert await cb.crons.count(metadata={"owner": a}) == 0

    before = await ca.crons.search(limit=100, sort_by="cron_id")
    refused = {
        "update": cb.crons.update(on_thread["cron_id"], schedule="0 0 2 2 *"),
        "update stateless": cb.crons.update(stateless["cron_id"], enabled=False),
        "delete": cb.crons.delete(on_thread["cron_id"]),
        "delete stateless": cb.crons.delete(stateless["cron_id"]),
        # b's cron on a's thread, or running a's assistant.
        "on a's thread": cb.crons.create_for_thread(a_tid, "whoami", schedule=YEARLY),
        "a's assistant": cb.crons.create(a_asst, schedule=YEARLY),
        "a's assistant on b's thread": cb.crons.create_for_thread(b_tid, a_asst, schedule=YEARLY),
    }
    statuses = {name: await status_of(call) for name, call in refused.items()}
    assert statuses == dict.fromkeys(refused, 404)
    assert await ca.crons.search(limit=100, sort_by="cron_id") == before
    assert ids(await cb.crons.search(limit=100), "cron_id") == {b_cron["cron_id"]}


async def test_the_owner_a_user_sends_is_replaced_by_the_handlers(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    """The handler's changes to the value are what gets written: a user
    cannot give what they create or change to somebody else."""
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    forged = {"owner": b, "k": 1}
    thread = await ca.threads.create(metadata=forged)
    tid = thread["thread_id"]
    assert thread["metadata"] == {"owner": a, "k": 1}
    assert (await ca.threads.update(tid, metadata=forged))["metadata"]["owner"] == a
    asst = await ca.assistants.create("whoami", metadata=forged)
    aid = asst["assistant_id"]
    assert asst["metadata"]["owner"] == a
    assert (await ca.assistants.update(aid, metadata=forged))["metadata"]["owner"] == a
    cron = await ca.crons.create_for_thread(
        tid, "whoami", schedule=YEARLY, input={}, metadata=forged
    )
    assert cron["metadata"]["owner"] == a
    updated = await ca.crons.update(cron["cron_id"], metadata=forged)
    assert updated["metadata"]["owner"] == a
    made = await ca.runs.create(None, "whoami", input={}, metadata=forged, on_completion="keep")
    await ca.runs.join(made["thread_id"], made["run_id"])
    assert (await ca.threads.get(made["thread_id"]))["metadata"]["owner"] == a
    # A copy of a's thread is a's.
    copied = await ca.threads.copy(tid)
    assert copied["metadata"]["owner"] == a  # type: ignore[index]

    assert await cb.threads.search(limit=100) == []
    assert await cb.assistants.search(metadata={"k": 1}) == []
    assert await cb.crons.search() == []
    for t in (tid, made["thread_id"], copied["thread_id"]):  # type: ignore[index]
        assert await status_of(cb.threads.get(t)) == 404


async def test_a_crons_runs_and_threads_stay_its_owners(
    users: tuple[str, str, dict[str, Any]], db: asyncpg.Pool
) -> None:
    """A tick has no request: what it makes (a run on the cron's thread, or
    a new thread kept after a stateless cron's run) is the cron owner's,
    and hidden from everyone else."""
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    tid = (await ca.threads.create())["thread_id"]
    on_thread = await ca.crons.create_for_thread(tid, "whoami", schedule=YEARLY, input={})
    stateless = await ca.crons.create("whoami", schedule=YEARLY, input={}, on_run_completed="keep")
    await db.execute(
        "UPDATE crons SET next_run_at = now() WHERE cron_id = ANY($1::uuid[])",
        [on_thread["cron_id"], stateless["cron_id"]],
    )

    async def ended() -> list[str]:
        # The stateless cron's thread says which cron made it.
        rows = await db.fetch(
            "SELECT r.thread_id::text, r.status FROM runs r LEFT JOIN threads t USING "
            "(thread_id) WHERE r.thread_id = $1::uuid OR t.metadata->>'cron_id' = $2 "
            "OR r.metadata->>'cron_id' = $2",
            tid,
            stateless["cron_id"],
        )
        done = [r["thread_id"] for r in rows if r["status"] not in ("pending", "running")]
        return done if len(done) >= 2 else []

    ran = await eventually(ended, timeout=60, what="both crons' runs ending")
    [kept] = set(ran) - {tid}
    threads = {t["thread_id"] for t in await ca.threads.search(limit=100)}
    assert threads == {tid, kept}
    assert len(await ca.runs.list(tid)) == 1
    assert len(await ca.runs.list(kept)) == 1
    assert (await ca.threads.get_state(kept))["values"] == {"user": a, "permissions": []}
    assert await cb.threads.search() == []
    assert await status_of(cb.threads.get(kept)) == 404
    assert await status_of(cb.runs.list(tid)) == 404


# -- refusals ------------------------------------------------------------------


@pytest.mark.parametrize("refused_user", ["denied", "broken"])
async def test_a_refusing_or_failing_handler_answers_403_and_changes_nothing(
    users: tuple[str, str, dict[str, Any]], db: asyncpg.Pool, refused_user: str
) -> None:
    """``denied``: the handler returns False; ``broken``: it raises."""
    a, _, clients = users
    ca, cx = clients[a], clients[refused_user]
    ta = await ca.threads.create()
    a_tid = ta["thread_id"]
    a_asst = (await ca.assistants.create("whoami"))["assistant_id"]
    mark = f"mark-{uuid.uuid4().hex}"
    new_thread, new_asst = str(uuid.uuid4()), str(uuid.uuid4())
    before = await ca.threads.get(a_tid)
    calls = {
        "threads.create": cx.threads.create(thread_id=new_thread, metadata={"m": mark}),
        "threads.search": cx.threads.search(),
        "threads.count": cx.threads.count(),
        "threads.get": cx.threads.get(a_tid),
        "threads.update": cx.threads.update(a_tid, metadata={"m": mark}),
        "threads.delete": cx.threads.delete(a_tid),
        "runs.create stateless": cx.runs.create(None, "whoami", input={"user": mark}),
        "runs.create": cx.runs.create(a_tid, "whoami", input={"user": mark}),
        "runs.create new thread": cx.runs.create(
            new_thread, "whoami", input={"user": mark}, if_not_exists="create"
        ),
        "runs.wait": cx.runs.wait(None, "whoami", input={"user": mark}),
        "runs.stream": drain(cx.runs.stream(None, "whoami", input={"user": mark})),
        "assistants.create": cx.assistants.create("whoami", assistant_id=new_asst, name=mark),
        "assistants.search": cx.assistants.search(),
        "assistants.get system": cx.assistants.get(SYSTEM_ASSISTANT),
        "assistants.delete": cx.assistants.delete(a_asst),
        "crons.create": cx.crons.create("whoami", schedule=YEARLY, input={"user": mark}),
        "crons.search": cx.crons.search(),
        "store.put_item": cx.store.put_item(["notes"], mark, {"m": mark}),
        "store.get_item": cx.store.get_item(["notes"], mark),
        "store.search_items": cx.store.search_items(["notes"]),
        "store.list_namespaces": cx.store.list_namespaces(),
        "store.delete_item": cx.store.delete_item(["notes"], mark),
    }
    statuses = {name: await status_of(call) for name, call in calls.items()}
    assert statuses == dict.fromkeys(calls, 403)

    like = f"%{mark}%"
    left = {
        "threads": await db.fetchval(
            "SELECT count(*) FROM threads WHERE thread_id = $1 OR metadata::text LIKE $2",
            uuid.UUID(new_thread),
            like,
        ),
        "runs": await db.fetchval("SELECT count(*) FROM runs WHERE kwargs::text LIKE $1", like),
        "assistants": await db.fetchval(
            "SELECT count(*) FROM assistants WHERE assistant_id = $1 OR name = $2",
            uuid.UUID(new_asst),
            mark,
        ),
        "crons": await db.fetchval("SELECT count(*) FROM crons WHERE payload::text LIKE $1", like),
        "store": await db.fetchval("SELECT count(*) FROM store WHERE key = $1", mark),
    }
    assert left == dict.fromkeys(left, 0)
    assert await ca.threads.get(a_tid) == before
    assert (await ca.assistants.get(a_asst))["assistant_id"] == a_asst


# -- another user's ids --------------------------------------------------------


async def test_another_users_thread_id_is_taken_and_stays_theirs(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    a_tid = (await ca.threads.create(metadata={"topic": "mine"}))["thread_id"]
    await ca.runs.wait(a_tid, "whoami", input={})
    a_asst = (await ca.assistants.create("whoami", name="a's"))["assistant_id"]
    before = await ca.threads.get(a_tid)
    state_before = await ca.threads.get_state(a_tid)
    runs_before = await ca.runs.list(a_tid)
    asst_before = await ca.assistants.get(a_asst)

    # Creating with a's id: taken (409), and never a's data in the answer.
    for if_exists in ("raise", "do_nothing"):
        try:
            got = await cb.threads.create(thread_id=a_tid, if_exists=if_exists)
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 409, (if_exists, exc.response.text)
            assert "mine" not in exc.response.text
        else:
            pytest.fail(f"b created a's thread with if_exists={if_exists}: {got}")
        try:
            made = await cb.assistants.create("whoami", assistant_id=a_asst, if_exists=if_exists)
        except httpx.HTTPStatusError as exc:
            assert exc.response.status_code == 409, (if_exists, exc.response.text)
            assert "a's" not in exc.response.text
        else:
            pytest.fail(f"b created a's assistant with if_exists={if_exists}: {made}")

    # A run that would create the thread if it were missing: a's is hidden.
    calls = {
        "runs.create": cb.runs.create(a_tid, "whoami", input={}, if_not_exists="create"),
        "runs.wait": cb.runs.wait(a_tid, "whoami", input={}, if_not_exists="create"),
        "runs.stream": drain(cb.runs.stream(a_tid, "whoami", input={}, if_not_exists="create")),
    }
    statuses = {name: await status_of(call) for name, call in calls.items()}
    assert statuses == dict.fromkeys(calls, 404)

    assert await ca.threads.get(a_tid) == before
    assert await ca.threads.get_state(a_tid) == state_before
    assert await ca.runs.list(a_tid) == runs_before
    assert await ca.assistants.get(a_asst) == asst_before
    assert await cb.threads.search() == []
    # The owner's own do_nothing answers the thread, unchanged.
    assert await ca.threads.create(thread_id=a_tid, if_exists="do_nothing") == before
    assert (
        await ca.assistants.create("whoami", assistant_id=a_asst, if_exists="do_nothing")
        == asst_before
    )


async def test_runs_take_the_users_assistants_and_stamp_the_threads_they_make(
    users: tuple[str, str, dict[str, Any]],
) -> None:
    a, b, clients = users
    ca, cb = clients[a], clients[b]
    a_asst = (await ca.assistants.create("whoami"))["assistant_id"]
    b_asst = (await cb.assistants.create("whoami"))["assistant_id"]
    b_tid = (await cb.threads.create())["thread_id"]

    calls = {
        "thread run": cb.runs.create(b_tid, a_asst, input={}),
        "thread run, wait": cb.runs.wait(b_tid, a_asst, input={}),
        "thread run, stream": drain(cb.runs.stream(b_tid, a_asst, input={})),
        "stateless": cb.runs.create(None, a_asst, input={}),
        "stateless, wait": cb.runs.wait(None, a_asst, input={}),
        "stateless, stream": drain(cb.runs.stream(None, a_asst, input={})),
        "batch": cb.runs.create_batch([{"assistant_id": a_asst, "input": {}}]),
        "batch on b's thread": cb.runs.create_batch(
            [{"assistant_id": a_asst, "input": {}, "thread_id": b_tid}]
        ),
    }
    statuses = {name: await status_of(call) for name, call in calls.items()}
    assert statuses == dict.fromkeys(calls, 404)
    assert await cb.runs.list(b_tid) == []

    # b's own assistant and the system one run, as b.
    assert await cb.runs.wait(b_tid, b_asst, input={}) == {"user": b, "permissions": []}
    assert await cb.runs.wait(None, "whoami", input={}) == {"user": b, "permissions": []}

    # A thread a run makes carries the run's metadata: the owner stamp.
    kept = await cb.runs.create(None, "whoami", input={}, on_completion="keep")
    await cb.runs.join(kept["thread_id"], kept["run_id"])
    made = await cb.threads.get(kept["thread_id"])
    assert made["metadata"]["owner"] == b
    new_tid = str(uuid.uuid4())
    await cb.runs.wait(new_tid, "whoami", input={}, if_not_exists="create")
    assert (await cb.threads.get(new_tid))["metadata"]["owner"] == b
    for tid in (kept["thread_id"], new_tid):
        assert await status_of(ca.threads.get(tid)) == 404
        assert await status_of(ca.runs.list(tid)) == 404
    assert ids(await cb.threads.search(limit=100), "thread_id") == {
        b_tid,
        kept["thread_id"],
        new_tid,
    }

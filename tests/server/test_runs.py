"""Thread runs driven by the official langgraph-sdk client against a real
``pgqueue serve`` (workers in the same process) on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import RunCreateMetadata

from tests.graphs.graphs import REPLY
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


async def new_thread(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


async def status_of(db: asyncpg.Pool, run_id: str) -> str | None:
    return await db.fetchval("SELECT status FROM runs WHERE run_id = $1", uuid.UUID(run_id))


async def test_background_run_and_join(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(client)
    seen: list[RunCreateMetadata] = []
    run = await client.runs.create(
        thread_id,
        "three_steps",
        input={"log": ["start"]},
        metadata={"purpose": "test"},
        on_run_created=seen.append,
    )
    assert run["status"] == "pending"
    assert run["metadata"] == {"purpose": "test"}
    # The SDK reads the run id from Content-Location.
    assert seen and seen[0]["run_id"] == run["run_id"]
    result = await client.runs.join(thread_id, run["run_id"])
    assert result == {"log": ["start", "one", "two", "three"]}
    got = await client.runs.get(thread_id, run["run_id"])
    assert got["status"] == "success"
    assert got["kwargs"]["input"] == {"log": ["start"]}
    listed = await client.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == [run["run_id"]]
    assert await client.runs.list(thread_id, status="pending") == []
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == result


async def test_wait_returns_values_and_error(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    assert await client.runs.wait(thread_id, "three_steps", input={"log": []}) == {
        "log": ["one", "two", "three"]
    }
    failed = await client.runs.wait(thread_id, "fails", input={}, raise_error=False)
    assert failed["__error__"]["error"] == "ValueError"
    assert "on purpose" in failed["__error__"]["message"]
    assert (await client.threads.get(thread_id))["status"] == "error"


async def test_stream_in_several_modes(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    parts = [
        part
        async for part in client.runs.stream(
            thread_id,
            "three_steps",
            input={"log": []},
            stream_mode=["values", "updates", "debug", "tasks", "checkpoints"],
        )
    ]
    events = [p.event for p in parts]
    assert events[0] == "metadata"
    assert set(events) == {"metadata", "values", "updates", "debug", "tasks", "checkpoints"}
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates == [
        {"one": {"log": ["one"]}},
        {"two": {"log": ["two"]}},
        {"three": {"log": ["three"]}},
    ]
    assert [p for p in parts if p.event == "values"][-1].data == {"log": ["one", "two", "three"]}


async def test_stream_single_mode_string_and_messages_tuple(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    parts = [
        p
        async for p in client.runs.stream(
            thread_id, "three_steps", input={"log": []}, stream_mode="updates"
        )
    ]
    assert [p.event for p in parts] == ["metadata", "updates", "updates", "updates"]
    tuple_parts = [
        p
        async for p in client.runs.stream(
            thread_id, "three_steps", input={"log": []}, stream_mode="messages-tuple"
        )
    ]
    # No chat model in this graph: only the metadata event, and no error.
    assert [p.event for p in tuple_parts] == ["metadata"]


async def test_stream_mode_messages_sends_the_platforms_partial_events(
    client: LangGraphClient,
) -> None:
    thread_id = await new_thread(client)
    question = {"messages": [{"role": "user", "content": "hi"}]}
    parts = [
        p
        async for p in client.runs.stream(thread_id, "chat", input=question, stream_mode="messages")
    ]
    names = [p.event for p in parts]
    words = REPLY.split(" ")
    # One metadata event for the one message, then a partial per chunk (the
    # fake model streams a word or a space at a time).
    assert names[:2] == ["metadata", "messages/metadata"]
    assert set(names[2:]) == {"messages/partial"}
    [(message_id, meta)] = parts[1].data.items()
    assert meta["metadata"]["langgraph_node"] == "chat"
    sums = [p.data[0] for p in parts[2:]]
    assert all(m["id"] == message_id and m["type"] == "ai" for m in sums)
    contents = [m["content"] for m in sums]
    # Each partial is the message so far: it only grows, and ends whole.
    assert all(b.startswith(a) and len(b) > len(a) for a, b in pairwise(contents))
    assert contents[0] == words[0] and contents[-1] == REPLY

    # messages-tuple: LangGraph's (chunk, metadata) pairs, one per chunk.
    tuples = [
        p
        async for p in client.runs.stream(
            thread_id, "chat", input=question, stream_mode="messages-tuple"
        )
    ]
    assert {p.event for p in tuples[1:]} == {"messages"}
    chunks = [p.data[0] for p in tuples[1:]]
    assert "".join(c["content"] for c in chunks) == REPLY
    assert all(c["type"] == "AIMessageChunk" for c in chunks)
    assert len(chunks) == len(sums)


async def test_only_streamed_runs_ask_for_their_events_at_once(client: LangGraphClient) -> None:
    """A run created and joined writes its events with its end; one created
    by a stream route (or resumable) has them written as they come.

    What this asks of the executor (events written at once, or batched) is
    checked there: tests/execution/test_executor.py,
    test_events_are_written_as_they_come_only_for_live_streams."""
    thread_id = await new_thread(client)
    background = await client.runs.create(thread_id, "echo", input={"count": 1})
    resumable = await client.runs.create(
        thread_id, "echo", input={"count": 1}, stream_resumable=True
    )
    [_ async for _ in client.runs.stream(thread_id, "echo", input={"count": 1})]
    await client.runs.join(thread_id, resumable["run_id"])
    listed = await client.runs.list(thread_id)
    live = {r["run_id"]: r["kwargs"]["live_stream"] for r in listed}
    assert live.pop(background["run_id"]) is False
    assert live.pop(resumable["run_id"]) is True
    assert list(live.values()) == [True]  # the streamed one


async def test_join_stream_with_last_event_id_replays_after_it(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "ticks", input={"until": 6}, stream_mode="updates", stream_resumable=True
    )
    await client.runs.join(thread_id, run["run_id"])
    everything = [
        p async for p in client.runs.join_stream(thread_id, run["run_id"], last_event_id="0")
    ]
    assert [p.event for p in everything] == ["metadata"] + ["updates"] * 6
    ids = [int(p.id) for p in everything if p.id is not None]
    assert ids == list(range(1, 8))
    rest = [p async for p in client.runs.join_stream(thread_id, run["run_id"], last_event_id="4")]
    assert [p.data for p in rest] == [p.data for p in everything[4:]]
    # "-1" is what the JS SDK's useStream sends after a page reload: from the start.
    again = [p async for p in client.runs.join_stream(thread_id, run["run_id"], last_event_id="-1")]
    assert [(p.id, p.data) for p in again] == [(p.id, p.data) for p in everything]
    for bogus in ("-2", "1700000000000-0", "x"):
        with pytest.raises(httpx.HTTPStatusError) as info:
            [
                p
                async for p in client.runs.join_stream(
                    thread_id, run["run_id"], last_event_id=bogus
                )
            ]
        assert info.value.response.status_code == 422
        assert "Last-Event-ID" in info.value.response.text
    # A digit to str.isdigit() that int() refuses (it answered 500).
    path = f"/threads/{thread_id}/runs/{run['run_id']}/stream"
    raw = await client.http.client.get(path, headers={"Last-Event-ID": b"\xb2"})
    assert raw.status_code == 422
    assert raw.json()["detail"].startswith("Last-Event-ID")
    # Joining an ended run without Last-Event-ID: only what comes next, i.e. nothing.
    assert [p async for p in client.runs.join_stream(thread_id, run["run_id"])] == []


async def test_join_stream_live(client: LangGraphClient, db: asyncpg.Pool) -> None:
    """Joined without Last-Event-ID before it starts, a run streams all it
    does. It waits behind a run on its thread until the join was answered,
    so it cannot have ended (leaving nothing to stream) by then."""
    thread_id = await new_thread(client)
    blocker = await client.runs.create(thread_id, "ticks", input={"until": 100_000, "delay": 0.05})
    await eventually(lambda: _running(db, blocker["run_id"]), timeout=30, what="blocker running")
    run = await client.runs.create(
        thread_id,
        "ticks",
        input={"count": 0, "until": 5, "delay": 0.1},
        stream_mode="updates",
        multitask_strategy="enqueue",
    )
    answered = asyncio.Event()

    async def on_response(response: httpx.Response) -> None:
        if response.request.url.path.endswith(f"/runs/{run['run_id']}/stream"):
            answered.set()

    hooks = client.http.client.event_hooks
    hooks["response"] = [*hooks["response"], on_response]

    async def join() -> list[Any]:
        return [p async for p in client.runs.join_stream(thread_id, run["run_id"])]

    joining = asyncio.create_task(join())
    await asyncio.wait_for(answered.wait(), 30)
    assert await status_of(db, run["run_id"]) == "pending"
    await client.runs.cancel(thread_id, blocker["run_id"], wait=True)
    parts = await asyncio.wait_for(joining, 60)
    assert [p.event for p in parts] == ["metadata"] + ["updates"] * 5
    assert parts[-1].data == {"tick": {"count": 5}}


async def test_cancel_interrupt_and_rollback(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "ticks", input={"until": 1000, "delay": 0.05}, stream_mode="updates"
    )
    await eventually(lambda: _has_events(db, run["run_id"], 3), timeout=30, what="ticks")
    await client.runs.cancel(thread_id, run["run_id"], wait=True, action="interrupt")
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"
    state = await client.threads.get_state(thread_id)
    assert state["values"]["count"] >= 1  # checkpoints kept

    second = await client.runs.create(
        thread_id, "ticks", input={"until": 1000, "delay": 0.05}, stream_mode="updates"
    )
    await eventually(lambda: _has_events(db, second["run_id"], 3), timeout=30, what="ticks")
    await client.runs.cancel(thread_id, second["run_id"], action="rollback")
    await eventually(lambda: _gone(db, second["run_id"]), timeout=30, what="rollback")
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.get(thread_id, second["run_id"])
    assert info.value.response.status_code == 404


async def test_cancel_pending_run_at_once_and_404_when_not_live(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    later = await client.runs.create(thread_id, "three_steps", input={}, after_seconds=600)
    await client.runs.cancel(thread_id, later["run_id"])
    assert (await client.runs.get(thread_id, later["run_id"]))["status"] == "interrupted"
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.cancel(thread_id, later["run_id"])
    assert info.value.response.status_code == 404


async def _has_events(db: asyncpg.Pool, run_id: str, n: int) -> bool:
    count = await db.fetchval(
        "SELECT count(*) FROM run_events WHERE run_id = $1", uuid.UUID(run_id)
    )
    return bool(count >= n)


async def _gone(db: asyncpg.Pool, run_id: str) -> bool:
    return await status_of(db, run_id) is None


async def test_interrupt_and_resume(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    first = await client.runs.wait(thread_id, "asks", input={"log": []})
    assert first["__interrupt__"][0]["value"] == {"question": "what is the answer?"}
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["interrupts"]
    resumed = await client.runs.wait(thread_id, "asks", command={"resume": 42})
    assert resumed == {"log": ["asked"], "answer": 42}
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_before_a_node(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    stopped = await client.runs.wait(
        thread_id, "three_steps", input={"log": []}, interrupt_before=["two"]
    )
    assert stopped == {"log": ["one"]}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["two"]
    done = await client.runs.wait(thread_id, "three_steps", input=None)
    assert done == {"log": ["one", "two", "three"]}


async def test_multitask_reject(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(client)
    busy = await client.runs.create(thread_id, "ticks", input={"until": 1000, "delay": 0.05})
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.create(thread_id, "three_steps", input={}, multitask_strategy="reject")
    assert info.value.response.status_code == 409
    assert "already running" in info.value.response.text
    assert len(await client.runs.list(thread_id)) == 1  # nothing inserted
    await client.runs.cancel(thread_id, busy["run_id"], wait=True)


async def test_multitask_enqueue_runs_in_order(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "ticks", input={"until": 3, "delay": 0.05})
    second = await client.runs.create(
        thread_id, "ticks", input={"until": 6}, multitask_strategy="enqueue"
    )
    assert await client.runs.join(thread_id, second["run_id"]) == {
        "count": 6,
        "until": 6,
        "delay": 0.05,
    }
    rows = await db.fetch(
        "SELECT run_id, started_at, ended_at FROM runs WHERE thread_id = $1 ORDER BY seq",
        uuid.UUID(thread_id),
    )
    assert [str(r["run_id"]) for r in rows] == [first["run_id"], second["run_id"]]
    assert rows[0]["ended_at"] <= rows[1]["started_at"]


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_multitask_interrupt_and_rollback(
    client: LangGraphClient, db: asyncpg.Pool, strategy: str
) -> None:
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "ticks", input={"until": 1000, "delay": 0.05})
    await eventually(lambda: _running(db, first["run_id"]), timeout=30, what="first running")

    async def ticked() -> bool:  # a few of the first run's steps are checkpointed
        return (await client.threads.get_state(thread_id))["values"].get("count", 0) >= 3

    await eventually(ticked, timeout=30, what="first run's ticks")
    second = await client.runs.create(
        thread_id, "ticks", input={"until": 2}, multitask_strategy=strategy
    )
    result = await client.runs.join(thread_id, second["run_id"])
    history = await client.threads.get_history(thread_id, limit=1000)
    by_first = [s for s in history if s["metadata"].get("run_id") == first["run_id"]]
    if strategy == "interrupt":
        # The first run stays, interrupted, with its checkpoints; the second
        # goes on from its last one: one tick more (past until=2 already).
        assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "interrupted"
        reached = max(s["values"].get("count", 0) for s in by_first)
        assert reached >= 3
        assert result == {"count": reached + 1, "until": 2, "delay": 0.05}
    else:
        # The first run and everything it wrote are gone: the second starts
        # from a fresh thread, as if the first had never run.
        assert await status_of(db, first["run_id"]) is None
        assert by_first == []
        assert result == {"count": 2, "until": 2}
        state = await client.threads.get_state(thread_id)
        assert state["values"] == {"count": 2, "until": 2}


async def _running(db: asyncpg.Pool, run_id: str) -> bool:
    return await status_of(db, run_id) == "running"


async def test_if_not_exists(client: LangGraphClient) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(httpx.HTTPStatusError) as info:
        await client.runs.create(missing, "three_steps", input={})
    assert info.value.response.status_code == 404
    run = await client.runs.create(missing, "three_steps", input={}, if_not_exists="create")
    assert await client.runs.join(missing, run["run_id"]) == {"log": ["one", "two", "three"]}


async def test_after_seconds_delays_the_start(client: LangGraphClient, db: asyncpg.Pool) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"count": 0}, after_seconds=1.5)
    await client.runs.join(thread_id, run["run_id"])
    row = await db.fetchrow(
        "SELECT created_at, started_at FROM runs WHERE run_id = $1", uuid.UUID(run["run_id"])
    )
    assert (row["started_at"] - row["created_at"]).total_seconds() >= 1.5


async def test_delete_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, run["run_id"])
    await client.runs.delete(thread_id, run["run_id"])
    assert await client.runs.list(thread_id) == []


async def test_stream_client_disconnect_cancels_when_asked(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    thread_id = await new_thread(client)
    stream = client.runs.stream(
        thread_id,
        "ticks",
        input={"until": 1000, "delay": 0.05},
        stream_mode="updates",
        on_disconnect="cancel",
    )
    run_id = None
    async for part in stream:
        if part.event == "metadata":
            run_id = part.data["run_id"]
        if part.event == "updates":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert run_id is not None
    await eventually(
        lambda: _status_in(db, run_id, {"interrupted"}), timeout=30, what="cancel on disconnect"
    )


async def _status_in(db: asyncpg.Pool, run_id: str, statuses: set[str]) -> bool:
    return await status_of(db, run_id) in statuses


def _post(server: ServerProcess, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=30, **kwargs)


def test_bad_requests_are_4xx_naming_the_field(server: ServerProcess) -> None:
    thread = _post(server, "/threads", {}).json()["thread_id"]
    path = f"/threads/{thread}/runs"
    cases: list[tuple[Any, int, str]] = [
        ({"assistant_id": "three_steps", "stream_mode": "nope"}, 422, "stream_mode"),
        ({"assistant_id": "no_such_graph"}, 422, "assistant_id"),
        ({"assistant_id": str(uuid.uuid4())}, 404, "assistant"),
        ({"assistant_id": "three_steps", "multitask_strategy": "sometimes"}, 422, "multitask_strategy"),
        ({"assistant_id": "three_steps", "after_seconds": -1}, 422, "after_seconds"),
        ({"assistant_id": "three_steps", "config": {"configurable": {"a": 1}}, "context": {"b": 2}}, 400, "context"),
        ({"assistant_id": "three_steps", "webhook": "ftp://x"}, 422, "webhook"),
        ({"assistant_id": "three_steps", "input": {"x": "\u0000"}}, 422, ""),
        ({}, 422, "assistant_id"),
    ]  # fmt: skip
    for body, status, needle in cases:
        response = _post(server, path, body)
        assert response.status_code == status, (body, response.text)
        assert needle in response.json()["detail"], (body, response.text)
    malformed = httpx.post(server.url + path, content=b"{not json", timeout=30)
    assert malformed.status_code == 422 and "malformed JSON" in malformed.json()["detail"]
    not_uuid = _post(server, "/threads/not-a-uuid/runs", {"assistant_id": "three_steps"})
    assert not_uuid.status_code == 422 and "thread_id" in not_uuid.json()["detail"]
    stateless_resume = _post(
        server, "/runs/wait", {"assistant_id": "asks", "command": {"resume": 1}}
    )
    assert stateless_resume.status_code == 400
    huge = httpx.post(
        server.url + path,
        content=b'{"assistant_id": "echo", "input": "' + b"x" * (11 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert huge.status_code == 413
    # None of them left a run behind.
    assert httpx.get(server.url + path).json() == []


async def test_stateless_runs_and_on_completion(client: LangGraphClient, db: asyncpg.Pool) -> None:
    before = await db.fetchval("SELECT count(*) FROM threads")
    assert await client.runs.wait(None, "echo", input={"count": 1}) == {"count": 2}
    # on_completion=delete (the default): the temporary thread is gone.
    await eventually(
        lambda: _thread_count_is(db, before), timeout=30, what="temporary thread deleted"
    )
    kept: list[RunCreateMetadata] = []
    await client.runs.wait(
        None, "echo", input={"count": 1}, on_completion="keep", on_run_created=kept.append
    )
    thread_id = kept[0]["thread_id"]
    assert thread_id is not None
    assert (await client.threads.get(thread_id))["values"] == {"count": 2}
    streamed = [p async for p in client.runs.stream(None, "echo", input={"count": 5})]
    assert streamed[-1].data == {"count": 6}
    # In the background: it runs, and its temporary thread goes once it ends
    # (kept here first, to see its output).
    background = await client.runs.create(None, "echo", input={"count": 1}, on_completion="keep")
    assert background["status"] == "pending"
    assert await client.runs.join(background["thread_id"], background["run_id"]) == {"count": 2}
    before = await db.fetchval("SELECT count(*) FROM threads")
    deleted = await client.runs.create(None, "echo", input={"count": 1})
    # A new thread of its own (the run may already have ended and taken it
    # along by now: not counted here, which would race the run).
    assert deleted["thread_id"] not in {background["thread_id"], thread_id}

    async def ran_then_went() -> bool:
        # Only the run's end deletes it (on_completion=delete).
        return not await db.fetchval(
            "SELECT count(*) FROM threads WHERE thread_id = $1", uuid.UUID(deleted["thread_id"])
        )

    await eventually(ran_then_went, timeout=30, what="background run's thread deleted")
    assert await status_of(db, deleted["run_id"]) is None  # gone with its thread
    assert await _thread_count_is(db, before)


async def _thread_count_is(db: asyncpg.Pool, n: int) -> bool:
    return await db.fetchval("SELECT count(*) FROM threads") == n


async def test_batch_and_cancel_many(client: LangGraphClient, db: asyncpg.Pool) -> None:
    created = await client.runs.create_batch(
        [{"assistant_id": "echo", "input": {"count": i}, "after_seconds": 600} for i in range(3)]
    )
    assert len(created) == 3
    ids = [r["run_id"] for r in created]
    await client.runs.cancel_many(run_ids=ids, action="rollback")
    for run_id in ids:
        assert await status_of(db, run_id) is None

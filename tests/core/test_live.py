"""Committed events handed to followers in the same process (pgqueue/core/live.py).

The first tests drive ``LiveRun`` directly, as the executor and a follower
do. The last one follows a run through a ``serve`` process (which executes
it and streams it from memory) across a retriable failure: the local
execution stops without a final status, the follower goes back to the table,
and the next attempt is followed from memory again, with every event id
seen once and in order."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from pgqueue.core.live import KEEP, LiveRuns, StoredEvent
from tests.graphs.tokens import RETRIED_TOKENS
from tests.server.test_stream_failover import sse_events
from tests.support.procs import write_config
from tests.support.server import server_process


def events(first: int, last: int) -> list[StoredEvent]:
    return [StoredEvent(seq, "messages", f'["tok{seq}"]') for seq in range(first, last + 1)]


def test_a_follower_gets_what_came_after_its_last_id_from_this_attempt() -> None:
    live = LiveRuns().start(uuid.uuid4())
    live.base = 10  # earlier attempts wrote events 1..10
    live.publish(events(11, 15))
    assert [e.seq for e in live.after(12) or []] == [13, 14, 15]
    assert live.after(15) == []
    # Events of earlier attempts are not here: the table has them.
    assert live.after(9) is None
    assert live.after(0) is None


def test_memory_keeps_the_latest_events_and_sends_older_readers_to_the_table() -> None:
    live = LiveRuns().start(uuid.uuid4())
    live.publish(events(1, 2 * KEEP + 1))
    assert len(live.events) == KEEP
    assert live.base == KEEP + 1
    assert live.after(KEEP) is None
    kept = live.after(KEEP + 1)
    assert kept is not None and [e.seq for e in kept] == list(range(KEEP + 2, 2 * KEEP + 2))


async def test_the_end_wakes_followers_and_takes_the_run_out_of_the_registry() -> None:
    runs = LiveRuns()
    run_id = uuid.uuid4()
    live = runs.start(run_id)
    waiter = live.waiter()
    assert runs.get(run_id) is live and not live.over
    live.publish(events(1, 3))
    assert waiter.is_set()
    waiter.clear()
    live.finish("success")
    assert waiter.is_set() and live.status == "success" and runs.get(run_id) is None
    # Nothing is published after the end; a late detach changes nothing.
    live.publish(events(4, 4))
    live.detach()
    assert [e.seq for e in live.events] == [1, 2, 3]
    assert live.status == "success" and not live.detached


async def test_a_new_attempt_here_detaches_the_old_one_and_wakes_who_waits_for_the_run() -> None:
    woken: list[uuid.UUID] = []
    runs = LiveRuns(on_start=woken.append)
    run_id = uuid.uuid4()
    first = runs.start(run_id)
    waiter = first.waiter()
    second = runs.start(run_id)
    assert first.detached and waiter.is_set()
    assert runs.get(run_id) is second and woken == [run_id, run_id]
    # A waiter taken once the run is over is set at once.
    assert first.waiter().is_set()
    await asyncio.sleep(0)


def test_a_stream_followed_from_memory_survives_a_retried_attempt(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"retried": "tokens.py:retried_once"})
    thread_id = str(uuid.uuid4())
    with (
        server_process(database_url, command="serve", config=config) as server,
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST",
            f"{server.url}/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "retried",
                "input": {"messages": [{"role": "user", "content": "speak"}]},
                "stream_mode": "messages-tuple",
                "if_not_exists": "create",
            },
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        seen = list(sse_events(response))
        run_id = response.headers["location"].split("/runs/")[1].split("/")[0]
        run = http.get(f"{server.url}/threads/{thread_id}/runs/{run_id}").json()

    ids = [event_id for event_id, _, _ in seen]
    assert ids == list(range(1, len(ids) + 1)), "an event was lost or sent twice"
    starts = [i for i, (_, name, _) in enumerate(seen) if name == "metadata"]
    assert [seen[i][2]["attempt"] for i in starts] == [1, 2], seen  # type: ignore[index]

    def tokens(frames: list[tuple[int, str, object]]) -> list[str]:
        return [d[0]["content"] for _, n, d in frames if n == "messages" and d[0]["content"]]  # type: ignore[index]

    # The first attempt's tokens that committed before it failed, then the
    # whole second attempt.
    first = tokens(seen[starts[0] : starts[1]])
    assert first == [f"tok{i}" for i in range(len(first))] and len(first) <= RETRIED_TOKENS // 2
    assert tokens(seen[starts[1] :]) == [f"tok{i}" for i in range(RETRIED_TOKENS)]
    assert run["status"] == "success", run

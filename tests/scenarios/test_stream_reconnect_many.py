"""A client that keeps dropping its stream and reconnecting with
Last-Event-ID, alternately to two server processes, sees every event of the
run exactly once and in order (issue 14).

The run streams 500 chat-model tokens (stream mode "messages-tuple") from a
``serve`` process (A, which also executes it); the client reads a random
number of events (seeded, so a failure reproduces) from one connection,
drops it, and resumes from the last id it saw on the other server: the
``server`` process B, then A, then B... until the run's stream ends."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.graphs.tokens import TOKENS
from tests.server.test_stream_failover import sse_events
from tests.support.procs import write_config
from tests.support.server import server_process

SEED = 14
MOST_PER_CONNECTION = 16  # events read before dropping: 1..16, about 8 on average
LEAST_RECONNECTS = 50


def read_with_reconnects(
    urls: tuple[str, str], thread_id: str, rng: random.Random
) -> tuple[str, list[tuple[int, str, Any]], int]:
    """Start the run on ``urls[0]`` and follow its stream to the end,
    dropping the connection after a random number of events each time and
    resuming with Last-Event-ID on the other server. Returns the run id,
    every event seen, and how many times the client reconnected."""
    seen: list[tuple[int, str, Any]] = []
    reconnects = 0
    with httpx.Client(timeout=60) as http:
        first = http.build_request(
            "POST",
            f"{urls[0]}/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "tokens",
                "input": {"messages": [{"role": "user", "content": "speak"}]},
                "stream_mode": "messages-tuple",
                "stream_resumable": True,
                "on_disconnect": "continue",
                "if_not_exists": "create",
            },
        )
        response = http.send(first, stream=True)
        assert response.status_code == 200, response.read()
        run_id = response.headers["location"].split("/runs/")[1].split("/")[0]
        while True:
            budget = rng.randint(1, MOST_PER_CONNECTION)
            taken = 0
            try:
                for frame in sse_events(response):
                    seen.append(frame)
                    taken += 1
                    if taken == budget:
                        break
                else:
                    return run_id, seen, reconnects  # the stream ended: the run is over
            finally:
                response.close()  # drop the connection mid-stream
            reconnects += 1
            url = urls[reconnects % 2]
            again = http.build_request(
                "GET",
                f"{url}/threads/{thread_id}/runs/{run_id}/stream",
                headers={"Last-Event-ID": str(seen[-1][0])},
            )
            response = http.send(again, stream=True)
            assert response.status_code == 200, response.read()


def test_stream_reconnected_many_times_across_two_servers_loses_and_repeats_nothing(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, {"tokens": "tokens.py:tokens"})
    thread_id = str(uuid.uuid4())
    with (
        server_process(database_url, command="serve", config=config) as a,
        server_process(database_url, command="server", config=config) as b,
    ):
        run_id, seen, reconnects = read_with_reconnects(
            (a.url, b.url), thread_id, random.Random(SEED)
        )
        run = httpx.get(f"{b.url}/threads/{thread_id}/runs/{run_id}", timeout=30).json()

    assert reconnects >= LEAST_RECONNECTS, reconnects
    ids = [event_id for event_id, _, _ in seen]
    assert ids == list(range(1, len(ids) + 1)), "an event was lost or sent twice"
    assert seen[0][1] == "metadata" and seen[0][2]["run_id"] == run_id
    assert {name for _, name, _ in seen[1:]} == {"messages"}, seen
    tokens = [data[0]["content"] for _, _, data in seen[1:] if data[0]["content"]]
    assert tokens == [f"tok{i}" for i in range(TOKENS)]
    assert not [name for _, name, _ in seen if name == "error"]
    assert run["status"] == "success", run

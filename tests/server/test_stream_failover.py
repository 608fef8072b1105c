"""A stream outlives the server process that began it: server A streams a
run, A is SIGKILLed mid-stream, and the client resumes through server B with
Last-Event-ID, losing and duplicating nothing. The run executes in a
separate worker process throughout."""

from __future__ import annotations

import contextlib
import json
import signal
import uuid
from collections.abc import Iterator

import httpx
from langgraph_sdk import get_client

from tests.support.procs import FAST, worker_process
from tests.support.server import server_process

TICKS = 40


def sse_events(response: httpx.Response) -> Iterator[tuple[int, str, object]]:
    """(id, event, data) for each SSE frame; comments (keep-alives) skipped."""
    event_id, name, data = None, None, None
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if name is not None and event_id is not None:
                yield int(event_id), name, json.loads(data or "null")
            event_id, name, data = None, None, None
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            name = value
        elif field == "data":
            data = value


async def test_stream_resumes_on_another_server_after_sigkill(database_url: str) -> None:
    thread_id = str(uuid.uuid4())
    with (
        worker_process(database_url, "graphs", *FAST),
        server_process(database_url, command="server") as a,
        server_process(database_url, command="server") as b,
    ):
        seen: list[tuple[int, str, object]] = []
        with httpx.stream(
            "POST",
            f"{a.url}/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "ticks",
                "input": {"until": TICKS, "delay": 0.05},
                "stream_mode": "updates",
                "stream_resumable": True,
                "if_not_exists": "create",
            },
            timeout=60,
        ) as response:
            assert response.status_code == 200
            location = response.headers["location"]
            run_id = location.split("/runs/")[1].split("/")[0]
            for frame in sse_events(response):
                seen.append(frame)
                if len(seen) == 6:
                    a.signal(signal.SIGKILL)
                    break
        a.proc.wait(10)

        everything = seen + await _rest_through(b.url, thread_id, run_id, seen[-1][0])
    assert [i for i, _, _ in everything] == list(range(1, len(everything) + 1))
    assert [name for _, name, _ in everything] == ["metadata"] + ["updates"] * TICKS
    assert [data for _, _, data in everything[1:]] == [
        {"tick": {"count": n}} for n in range(1, TICKS + 1)
    ]


async def test_a_stream_from_memory_resumes_on_another_serve_after_sigkill(
    database_url: str,
) -> None:
    """As above, but A is a ``serve`` process that executes the run and
    streams it from memory (pgqueue/core/live.py). SIGKILL takes the stream
    and the run's execution with it: the next attempt runs in serve process
    B and numbers its events after those A committed, so the client, back
    through B with Last-Event-ID, sees every id once and in order."""
    thread_id = str(uuid.uuid4())
    seen: list[tuple[int, str, object]] = []
    ticks_wanted = 100  # 5 s: far from over when A dies after 6 events
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(server_process(database_url, command="serve"))
        with httpx.stream(
            "POST",
            f"{a.url}/threads/{thread_id}/runs/stream",
            json={
                "assistant_id": "ticks",
                "input": {"until": ticks_wanted, "delay": 0.05},
                "stream_mode": "updates",
                "if_not_exists": "create",
            },
            timeout=60,
        ) as response:
            assert response.status_code == 200
            run_id = response.headers["location"].split("/runs/")[1].split("/")[0]
            for frame in sse_events(response):
                seen.append(frame)
                if len(seen) == 6:
                    break
            a.signal(signal.SIGKILL)
            a.proc.wait(10)
        # B starts once A is gone: its worker takes the run over.
        b = stack.enter_context(server_process(database_url, command="serve"))
        everything = seen + await _rest_through(b.url, thread_id, run_id, seen[-1][0])
    assert [i for i, _, _ in everything] == list(range(1, len(everything) + 1))

    starts = [data for _, name, data in everything if name == "metadata"]
    assert [m["attempt"] for m in starts] == [1, 2], starts  # type: ignore[index]
    ticks = [d["tick"]["count"] for _, name, d in everything if name == "updates"]  # type: ignore[index]
    # The second attempt resumes from its last checkpoint: the tick in
    # flight may come twice, no other, and none is skipped.
    assert [t for i, t in enumerate(ticks) if i == 0 or t != ticks[i - 1]] == list(
        range(1, ticks_wanted + 1)
    ), ticks


async def _rest_through(
    url: str, thread_id: str, run_id: str, last_seen: int
) -> list[tuple[int, str, object]]:
    """The stream's rest, joined through ``url`` with Last-Event-ID after
    ``last_seen``; checks that the ids go on from it, each once, in order."""
    client = get_client(url=url)
    try:
        rest = [
            (int(p.id or 0), p.event, p.data)
            async for p in client.runs.join_stream(thread_id, run_id, last_event_id=str(last_seen))
        ]
    finally:
        await client.http.client.aclose()
    ids = [event_id for event_id, _, _ in rest]
    assert ids == list(range(last_seen + 1, last_seen + 1 + len(ids))), "lost or sent twice"
    return rest

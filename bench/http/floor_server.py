"""The least a server can spend to stream the benchmark's chat graph over HTTP:
the floor under every peer's server CPU per streamed run.

It answers exactly the streaming load's calls (bench/http/stream_load.py):
``POST /threads``, then ``POST /threads/{id}/runs/stream`` with stream mode
"messages-tuple", by running the same graph (bench/http/graph/stream_graph.py)
in this process with LangGraph's in-memory saver and writing each chunk as
an SSE frame the moment LangGraph yields it. No queue, no database, no
durability, no second request, no framework above raw ASGI: what remains
is LangGraph running the graph, JSON encoding and HTTP. It is not pgqueue
and not a fake of it, and it is no competitor (a reference, without
ratios): it answers "how little CPU per streamed run can a Python server
on this machine spend on this graph?", measured in the same invocation as
the real servers.

    python bench/http/floor_server.py --port 2031
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
from bare_asgi import answer, answer_common, body, serve
from langgraph.checkpoint.memory import InMemorySaver

sys.path.insert(0, str(Path(__file__).resolve().parent / "graph"))
from stream_graph import graph  # noqa: E402

_STREAM = re.compile(r"^/threads/([^/]+)/runs/stream$")
_CHAT = graph.copy(update={"checkpointer": InMemorySaver()})


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return str(obj)


def _frame(seq: int, event: str, data: Any) -> bytes:
    payload = orjson.dumps(data, default=_default)
    return b"id: %d\r\nevent: %s\r\ndata: %s\r\n\r\n" % (seq, event.encode(), payload)


async def _stream(send: Any, thread_id: str, request: dict[str, Any]) -> None:
    run_id = str(uuid.uuid4())
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")],
        }
    )
    frame = _frame(1, "metadata", {"run_id": run_id, "attempt": 1})
    await send({"type": "http.response.body", "body": frame, "more_body": True})
    config = {"configurable": {"thread_id": thread_id}, "metadata": {"run_id": run_id}}
    seq = 1
    async for chunk, metadata in _CHAT.astream(
        request.get("input"), config, stream_mode="messages"
    ):
        seq += 1
        frame = _frame(seq, "messages", [chunk, metadata])
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or await answer_common(scope, receive, send):
        return
    path, method = scope["path"], scope["method"]
    if method == "POST" and (m := _STREAM.match(path)):
        await _stream(send, m.group(1), json.loads(await body(receive) or b"{}"))
    else:
        await answer(send, 404, {"detail": f"{method} {path}: not served by the floor server"})


if __name__ == "__main__":
    serve(app, __doc__)

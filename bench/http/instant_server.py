"""A server that answers the benchmark's calls at once and runs nothing: the
ceiling that the langgraph-sdk clients themselves put on the figures.

The load (sdk_load.py) makes threads, then creates and joins runs. This app
answers exactly those calls from a dict in memory, with the response shapes
langgraph-sdk reads (a run's join returns the graph's output, ``n + 1``, so
the load's check still holds). It is not pgqueue and not a fake of it: it
answers the question "how many create+join pairs per second can 20 SDK
clients send on this machine if the server cost nothing?", measured in the
same invocation as the real servers.

    python bench/http/instant_server.py --port 2030
"""

from __future__ import annotations

import argparse
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import uvicorn

_RUNS = re.compile(r"^/threads/([^/]+)/runs$")
_JOIN = re.compile(r"^/threads/([^/]+)/runs/([^/]+)/join$")

# run_id -> the output its join returns.
_outputs: dict[str, Any] = {}


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, payload: Any, headers: tuple[Any, ...] = ()) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    now = datetime.now(UTC).isoformat()
    if method == "GET" and path == "/ok":
        await _answer(send, 200, {"ok": True})
    elif method == "POST" and path == "/threads":
        await _body(receive)
        thread = {"thread_id": str(uuid.uuid4()), "created_at": now, "updated_at": now,
                  "metadata": {}, "status": "idle", "values": None}  # fmt: skip
        await _answer(send, 200, thread)
    elif method == "POST" and (m := _RUNS.match(path)):
        request = json.loads(await _body(receive) or b"{}")
        run_id = str(uuid.uuid4())
        _outputs[run_id] = {"n": int((request.get("input") or {}).get("n", 0)) + 1}
        run = {"run_id": run_id, "thread_id": m.group(1), "assistant_id": request.get(
            "assistant_id"), "status": "pending", "created_at": now, "updated_at": now,
               "metadata": {}, "kwargs": {}, "multitask_strategy": "reject"}  # fmt: skip
        location = f"/threads/{m.group(1)}/runs/{run_id}".encode()
        await _answer(send, 200, run, [(b"content-location", location)])
    elif method == "GET" and (m := _JOIN.match(path)):
        await _answer(send, 200, _outputs.pop(m.group(2), {}))
    else:
        await _answer(send, 404, {"detail": f"{method} {path}: not served by the instant server"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args()
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level, access_log=False)


if __name__ == "__main__":
    main()

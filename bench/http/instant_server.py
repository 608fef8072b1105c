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

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from bare_asgi import answer, answer_common, body, serve

_RUNS = re.compile(r"^/threads/([^/]+)/runs$")
_JOIN = re.compile(r"^/threads/([^/]+)/runs/([^/]+)/join$")

# run_id -> the output its join returns.
_outputs: dict[str, Any] = {}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http" or await answer_common(scope, receive, send):
        return
    path, method = scope["path"], scope["method"]
    now = datetime.now(UTC).isoformat()
    if method == "POST" and (m := _RUNS.match(path)):
        request = json.loads(await body(receive) or b"{}")
        run_id = str(uuid.uuid4())
        _outputs[run_id] = {"n": int((request.get("input") or {}).get("n", 0)) + 1}
        run = {"run_id": run_id, "thread_id": m.group(1), "assistant_id": request.get(
            "assistant_id"), "status": "pending", "created_at": now, "updated_at": now,
               "metadata": {}, "kwargs": {}, "multitask_strategy": "reject"}  # fmt: skip
        location = f"/threads/{m.group(1)}/runs/{run_id}".encode()
        await answer(send, 200, run, [(b"content-location", location)])
    elif method == "GET" and (m := _JOIN.match(path)):
        await answer(send, 200, _outputs.pop(m.group(2), {}))
    else:
        await answer(send, 404, {"detail": f"{method} {path}: not served by the instant server"})


if __name__ == "__main__":
    serve(app, __doc__)

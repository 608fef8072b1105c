"""What the reference servers (instant_server.py, floor_server.py) share:
reading a request body and answering JSON on bare ASGI, and their command
line. No framework, on purpose: they measure what is left without one."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import uvicorn


async def body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def answer(send: Any, status: int, payload: Any, headers: tuple[Any, ...] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def answer_common(scope: dict[str, Any], receive: Any, send: Any) -> bool:
    """``GET /ok`` and ``POST /threads``, as every reference server answers
    them (a thread made up on the spot); False: the request is neither."""
    path, method = scope["path"], scope["method"]
    if method == "GET" and path == "/ok":
        await answer(send, 200, {"ok": True})
        return True
    if method == "POST" and path == "/threads":
        await body(receive)
        now = datetime.now(UTC).isoformat()
        thread = {"thread_id": str(uuid.uuid4()), "created_at": now, "updated_at": now,
                  "metadata": {}, "status": "idle", "values": None}  # fmt: skip
        await answer(send, 200, thread)
        return True
    return False


def serve(app: Any, description: str | None) -> None:
    """``--host``, ``--port``, ``--log-level``; then uvicorn, no access log."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args()
    uvicorn.run(app, host=a.host, port=a.port, log_level=a.log_level, access_log=False)

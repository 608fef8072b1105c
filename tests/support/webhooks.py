"""A real local HTTP server that receives webhooks, langgraph.json files
whose webhooks section the tests choose, and a receiver's signature check."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.procs import GRAPHS_CONFIG

# The receivers below listen on 127.0.0.1, which the default policy refuses.
LOOPBACK_ALLOWED: dict[str, Any] = {"url": {"disable_loopback": False}}


def graphs_config(directory: Path, webhooks: Any, name: str = "langgraph.json") -> Path:
    """A langgraph.json in ``directory`` with the test graphs and this
    ``webhooks`` section (graph paths absolute: the file lives elsewhere)."""
    config = json.loads(GRAPHS_CONFIG.read_text())
    base = GRAPHS_CONFIG.parent
    config["graphs"] = {g: str(base / spec) for g, spec in config["graphs"].items()}
    config.pop("dependencies", None)  # relative to tests/graphs; none needed
    path = directory / name
    path.write_text(json.dumps({**config, "webhooks": webhooks}))
    return path


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check of X-Pgqueue-Signature, as README.md shows it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - int(fields["t"])) <= tolerance  # refuses replays
    return fresh and hmac.compare_digest(mac.hexdigest(), fields["v1"])


# What the receiver does with a request: answer an HTTP status, or "drop"
# (close the connection without answering).
Step = int | str


class Receiver:
    """Answers each delivery from ``script`` in turn, then 200 once it is
    spent. ``requests`` holds every body it got, ``bodies`` those it
    accepted (2xx); ``refused`` counts the others. ``raw`` and ``headers``
    hold each request's bytes and headers, as received."""

    def __init__(self, script: list[Step] | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers["content-length"]))
                body = json.loads(raw)
                with receiver._lock:
                    receiver.requests.append(body)
                    receiver.raw.append(raw)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    step = receiver.script.pop(0) if receiver.script else 200
                    if step != "drop" and 200 <= int(step) < 300:
                        receiver.bodies.append(body)
                    else:
                        receiver.refused += 1
                if step == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(int(step))
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def refuse_first(self) -> int:
        return len(self.script)

    @refuse_first.setter
    def refuse_first(self, n: int) -> None:
        """The next ``n`` deliveries get a 503 (so the sender tries again)."""
        with self._lock:
            self.script = [503] * n

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

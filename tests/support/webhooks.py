"""A real local HTTP server that receives webhooks."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What the receiver does with a request: answer an HTTP status, or "drop"
# (close the connection without answering).
Step = int | str


class Receiver:
    """Answers each delivery from ``script`` in turn, then 200 once it is
    spent. ``requests`` holds every body it got, ``bodies`` those it
    accepted (2xx); ``refused`` counts the others."""

    def __init__(self, script: list[Step] | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.refused = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver._lock:
                    receiver.requests.append(body)
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

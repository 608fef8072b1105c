"""A real local HTTP server that receives webhooks."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records the body of each delivery it accepts. The first
    ``refuse_first`` deliveries get a 503 instead (so the sender tries
    again); ``refused`` counts them."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.refuse_first = 0
        self.refused = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.refuse_first > 0:
                    receiver.refuse_first -= 1
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

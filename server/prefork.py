"""``pgqueue serve --workers N``: N server processes sharing one port, to
use a machine's cores with one command.

Each child is a whole ``pgqueue serve`` (HTTP API, workers, sweeper,
pruner, scheduler): they coordinate through the database as separate
processes on separate machines do, so nothing here shares state. The
children bind the port with SO_REUSEPORT, and the kernel spreads new
connections across them; the parent binds it first (without listening) to
hold the port, and to learn it when ``--port 0`` asked for any free one.

The parent migrates once, relays the children's output, prints the one
``pgqueue: serving on ...`` line once every child serves, forwards
SIGINT/SIGTERM (a second one too: the children's "hurry"), and exits when
they have. A child that dies on its own takes the others down and the
parent exits 1, for the supervisor above it to restart the whole; a
half-dead set of processes would serve with less than it was asked for and
say nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from server.main import next_steps

log = logging.getLogger(__name__)

# What each child prints once it serves (server/main.py).
_SERVING = re.compile(r"^pgqueue: serving on http://\S+$")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, not listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def follow_parent(parent: int) -> None:
    """In a child: get SIGTERM when the parent dies, even by SIGKILL, so no
    orphan keeps serving (and running runs) after its parent is gone.
    Linux's PR_SET_PDEATHSIG; elsewhere, children outlive a killed parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Prefork:
    def __init__(self, argv: Sequence[str], host: str, port: int, workers: int) -> None:
        self._argv = list(argv)
        self._host = host
        self._holder = reuse_port_socket(host, port)
        self.port = self._holder.getsockname()[1]
        self._workers = workers
        self._children: list[subprocess.Popen[str]] = []
        self._serving = 0
        self._lock = threading.Lock()
        self._signals = 0

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._forward) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for _ in range(self._workers):
                self._spawn()
            return self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._holder.close()

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "server", *self._argv, "--port", str(self.port)]
        child = subprocess.Popen(
            [*command, "--reuse-port", str(os.getpid())],
            stdout=subprocess.PIPE,
            text=True,
            # Its own signals come from here, once: a Ctrl-C in a terminal
            # would otherwise reach every child twice (group and parent).
            start_new_session=True,
        )
        self._children.append(child)
        threading.Thread(target=self._relay, args=(child,), daemon=True).start()

    def _relay(self, child: subprocess.Popen[str]) -> None:
        """The child's stdout, line by line, except its "serving" line: the
        parent says that once, for all of them."""
        assert child.stdout is not None
        for line in child.stdout:
            if _SERVING.match(line.rstrip("\n")):
                with self._lock:
                    self._serving += 1
                    if self._serving == self._workers:
                        url = f"http://{self._host}:{self.port}"
                        print(f"pgqueue: serving on {url}", flush=True)
                        print(
                            f"pgqueue: {self._workers} server processes share the port "
                            f"(pids {', '.join(str(c.pid) for c in self._children)})",
                            flush=True,
                        )
                        print(next_steps(url), flush=True)
                continue
            sys.stdout.write(line)
            sys.stdout.flush()

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signum)

    def _wait(self) -> int:
        status = 0
        pending = list(self._children)
        while pending:
            for child in list(pending):
                try:
                    code = child.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    continue
                pending.remove(child)
                if code != 0 and not self._signals:
                    # Died on its own: stop the rest, exit for a restart.
                    log.error(
                        "server process %d exited with status %d; stopping the others",
                        child.pid,
                        code,
                        extra={"event": "prefork_child_died"},
                    )
                    status = 1
                    self._forward(signal.SIGTERM, None)
        return status

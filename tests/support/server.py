"""``pgqueue serve`` / ``pgqueue server`` as real subprocesses (``python -m
server``, the full command), for HTTP tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.procs import FAST, GRAPHS_CONFIG, PgqueueProcess


def free_port() -> int:
    """A port nobody listened on a moment ago (for an address nothing is to
    answer at; a server binds port 0 instead, see ServerProcess)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVING = re.compile(r"^pgqueue: serving on http://[^\s]+:(\d+)$", re.MULTILINE)


class ServerProcess(PgqueueProcess):
    """``python -m server serve|server`` on a free port; ``url`` once ready.

    The server binds port 0 and prints the port the system gave it: a port
    chosen here and bound later could be taken meanwhile (by another test's
    server, or as a client's source port)."""

    def __init__(
        self,
        database_url: str,
        *extra: str,
        command: str = "serve",
        config: Path = GRAPHS_CONFIG,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port: int | None = port
        timing = FAST if command == "serve" else []
        args = [command, "--config", str(config), "--port", str(port or 0), *timing, *extra]
        super().__init__(database_url, args, env=env, new_session=True, module="server")

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server's port is known once it is bound (wait_ready)")
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.port is None:
                bound = SERVING.search(self.log())
                if bound is None:
                    time.sleep(0.1)
                    continue
                self.port = int(bound.group(1))
            try:
                if httpx.get(self.url + "/ok", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log_file.close()
        os.unlink(self.log_file.name)


@contextmanager
def server_process(database_url: str, *extra: str, **kwargs: object) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url, *extra, **kwargs)  # type: ignore[arg-type]
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def refused_start(database_url: str, config: Path, *, command: str = "serve") -> str:
    """Start a server that must refuse to: it exits non-zero, without a
    traceback; returns its log, to say why."""
    server = ServerProcess(database_url, command=command, config=config)
    try:
        assert server.proc.wait(60) != 0
        log = server.log()
    finally:
        server.close()
    assert "Traceback" not in log, log
    return log

"""Start one server, wait for GET /ok, stop it: with a fresh database (and
Redis db) each time, in its own process group so that nothing it spawned
outlives it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from peer_specs import VENVS, Peer, Settings, command, environment, write_config
from psycopg import sql


class StartupError(RuntimeError):
    """The server exited or did not answer /ok in time; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reset_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def flush_redis(peer: Peer, redis_url: str) -> None:
    """Empty the bench's own Redis db, in case a killed run left keys behind.

    The redis client lives in langhost's venv, not in the repo's.
    """
    code = "import redis, sys; redis.Redis.from_url(sys.argv[1]).flushdb()"
    subprocess.run([peer.python(), "-c", code, redis_url], check=True, timeout=30)


@dataclass
class Server:
    peer: Peer
    settings: Settings
    startup_timeout: float
    stop_timeout: float
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    log_path: Path | None = None

    def start(self) -> None:
        """Raises StartupError, whatever went wrong, with nothing left running."""
        try:
            self._start()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, StartupError) or not isinstance(exc, Exception):
                raise
            raise StartupError(f"{type(exc).__name__}: {exc}") from exc

    def _start(self) -> None:
        workdir = VENVS / "work" / self.peer.name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        if self.peer.database:
            reset_database(self.settings.admin_dsn, self.peer.database)
        if self.peer.uses_redis:
            flush_redis(self.peer, self.settings.redis_url)
        port = free_port()
        cmd = command(self.peer, self.settings, write_config(workdir, self.peer), port)
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=workdir,
                env=environment(self.peer, self.settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        self._wait_ok()

    def _wait_ok(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise StartupError(
                        f"exited with code {self.proc.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if http.get(f"{self.url}/ok").status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                time.sleep(0.2)
        raise StartupError(
            f"no 200 from /ok within {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self) -> dict[str, Any]:
        """SIGINT to the group (a graceful shutdown; py-spy writes its SVG),
        SIGKILL to whatever is still alive after stop_timeout. Says how it went:
        a server that needs SIGKILL, or exits non-zero on SIGINT, is worth knowing of."""
        if self.proc is None:
            return {}
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        t0 = time.monotonic()
        killed = False
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGINT)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                killed = True
                print(f"[{self.peer.name}] no exit {self.stop_timeout:.0f} s after SIGINT: SIGKILL")
        # Children may outlive the leader; the group goes in every case.
        _signal_group(pgid, signal.SIGKILL)
        code = self.proc.wait()
        self.proc = None
        if self.peer.database:
            drop_database(self.settings.admin_dsn, self.peer.database)
        return {"exit_code": code, "sigkill": killed, "seconds": round(time.monotonic() - t0, 2)}

    def log_tail(self, lines: int = 25) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) + f"\n(full log: {self.log_path})"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the whole group is gone already

"""Workers as real subprocesses, for crash and signal tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


GRAPHS_CONFIG = REPO / "tests" / "graphs" / "langgraph.json"


def write_config(directory: Path, graphs: dict[str, str] | None = None, **sections: Any) -> Path:
    """A langgraph.json in ``directory`` serving ``graphs`` (specs relative
    to tests/graphs; by default just ``echo``) with these top-level
    ``sections``: for tests that need a setting the test graphs' own
    langgraph.json does not have."""
    base = GRAPHS_CONFIG.parent
    specs = graphs or {"echo": "graphs.py:echo_graph"}
    path = directory / "langgraph.json"
    path.write_text(
        json.dumps(
            {
                "dependencies": [str(base)],
                "graphs": {name: str(base / spec) for name, spec in specs.items()},
                **sections,
            }
        )
    )
    return path


# Short leases so crash tests take seconds; the mechanics are the defaults'.
# The lease is 25 beats long: a loaded machine that stalls a healthy
# worker's heartbeat thread for a few seconds does not get it swept. Tests
# that wait for a lease to run out wait for the sweep, not a fixed time.
LEASE_SECONDS = 5.0
FAST = [
    "--heartbeat-interval", "0.2",
    "--stale-after", str(LEASE_SECONDS),
    "--sweep-interval", "0.2",
    "--poll-interval", "60",
]  # fmt: skip


class PgqueueProcess:
    """``python -m MODULE ARGS`` in a subprocess against ``database_url``,
    its output in a log file; the worker and server wrappers build on it.
    ``pgqueue`` has the library's commands, ``server`` adds serve and
    server."""

    def __init__(
        self,
        database_url: str,
        args: list[str],
        *,
        env: dict[str, str] | None = None,
        new_session: bool = False,
        module: str = "pgqueue",
    ) -> None:
        self.log_file = tempfile.NamedTemporaryFile(
            prefix=f"pgqueue-{args[0]}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=REPO,
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
            },
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        return Path(self.log_file.name).read_text()


class WorkerProcess(PgqueueProcess):
    """``pgqueue worker`` in a subprocess. ``handler`` names a function in
    tests/handlers.py, or is "graphs" for the LangGraph executor over
    tests/graphs/langgraph.json."""

    def __init__(self, database_url: str, handler: str, *extra: str) -> None:
        target = (
            ["--config", str(GRAPHS_CONFIG)]
            if handler == "graphs"
            else ["--handler", f"tests.handlers:{handler}"]
        )
        super().__init__(database_url, ["worker", *target, *extra])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        self.log_file.close()
        os.unlink(self.log_file.name)


@contextmanager
def worker_process(database_url: str, handler: str, *extra: str) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(database_url, handler, *extra)
    try:
        yield worker
    finally:
        worker.close()


def run_cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pgqueue ARGS`` against ``database_url`` and wait."""
    return subprocess.run(
        [sys.executable, "-m", "pgqueue", *args],
        cwd=env.pop("cwd", str(REPO)),
        env={**os.environ, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )

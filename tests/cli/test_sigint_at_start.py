"""SIGINT stops pgqueue while it starts (here: waiting for a database that
is not there) also when the process was started with SIGINT ignored, as a
shell script's background job is. Once running, the worker and the server
handle SIGINT themselves; before this, such a process ignored it until
then, and a supervisor's stop went unheard."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import GRAPHS_CONFIG, REPO
from tests.support.server import free_port
from tests.support.waiting import eventually


@pytest.mark.parametrize(("module", "command"), [("pgqueue", "worker"), ("server", "server")])
async def test_sigint_stops_a_start_that_inherited_sigint_ignored(
    module: str, command: str, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, command, "--config", str(GRAPHS_CONFIG)],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": nowhere, "PGQUEUE_STARTUP_WAIT_SECONDS": "600"},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:

        async def waiting() -> bool:
            return "database not reachable yet" in log.read_text()

        await eventually(waiting, timeout=60, what="the wait for the database")
        proc.send_signal(signal.SIGINT)
        # Without the fix it waits out the 600 s start-up budget.
        assert await asyncio.to_thread(proc.wait, 60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert "interrupted while starting" in log.read_text()
    assert "Traceback" not in log.read_text()

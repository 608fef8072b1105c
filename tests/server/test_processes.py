"""The HTTP commands as a user runs them: schema checks and the embedded
database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.procs import GRAPHS_CONFIG, REPO
from tests.support.server import server_process


def test_server_and_worker_refuse_an_outdated_schema(empty_database_url: str) -> None:
    for command in (
        ["server", "--config", str(GRAPHS_CONFIG)],
        ["worker", "--config", str(GRAPHS_CONFIG)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "server", *command],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": empty_database_url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert "pgqueue migrate" in done.stderr, done.stderr


def test_serve_migrates_and_server_then_starts(empty_database_url: str) -> None:
    with server_process(empty_database_url, command="serve") as serve:
        assert httpx.get(serve.url + "/ok").status_code == 200
    with server_process(empty_database_url, command="server") as server:
        assert httpx.get(server.url + "/assistants/echo").json()["graph_id"] == "echo"


def test_serve_without_database_url_uses_embedded_postgres_next_to_the_config(
    tmp_path: Path,
) -> None:
    # The README's example project, run from a copy as a user would.
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "hello", project)
    # Empty means unset to pgqueue.
    env = {"DATABASE_URL": "", "PGQUEUE_DATA_DIR": ""}
    with server_process("", config=project / "langgraph.json", env=env) as serve:
        run = httpx.post(
            serve.url + "/runs/wait",
            json={"assistant_id": "hello", "input": {"name": "pgqueue"}},
            timeout=60,
        )
        assert run.json() == {
            "name": "pgqueue",
            "greeting": "Hello, pgqueue!",
            "shout": "HELLO, PGQUEUE!",
        }
        log = serve.log()
    assert (project / ".pgqueue" / "pgdata").is_dir()
    # What a newcomer sees first: a few lines of pgqueue's own (where the
    # data lives, what was migrated, the URL, what to try), not initdb's
    # output or alembic's line per revision, which go to the log file.
    first_run = log[: log.index("try it:")].splitlines()
    assert len(first_run) <= 6, log
    assert "using embedded PostgreSQL in" in log and "migrated an empty database to" in log
    assert "initdb" not in log and "Running upgrade" not in log, log
    kept = (project / ".pgqueue" / "pgqueue.log").read_text()
    assert "Running upgrade" in kept and "pgserver" in kept
    # serve's access log: one line per request.
    assert '"POST /runs/wait HTTP/1.1" 200' in log

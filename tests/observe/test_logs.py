"""--log-format json: a real worker's stderr is one JSON object per line, and
the lines about a run carry its run id, thread id and attempt."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.observe import logs
from tests.support.procs import FAST, REPO, run_cli
from tests.support.server import server_process
from tests.support.waiting import eventually


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_a_workers_json_lines_name_their_run(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    stderr_path = tmp_path / "stderr"
    thread_id = uuid.uuid4()
    with open(stderr_path, "w") as stderr, open(tmp_path / "stdout", "w") as stdout:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "worker", "--handler", "tests.handlers:scripted"]
            + [*FAST, "--log-format", "json"],
            cwd=REPO,
            env={**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"},
            stdout=stdout,
            stderr=stderr,
        )
        try:
            # Fails once (retried), then succeeds: lines for two attempts.
            [sub] = await queue.submit(pool, [NewRun(thread_id=thread_id, kwargs={"fail": 1})])

            async def succeeded() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM runs WHERE run_id = $1", sub.run_id
                )
                return status == "success"

            await eventually(succeeded, timeout=60, what="the run to succeed")
        finally:
            worker.send_signal(signal.SIGINT)
            assert worker.wait(60) == 0
    lines = json_lines(stderr_path.read_text())
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    events = {line.get("event") for line in lines}
    assert {"worker_started", "worker_stopped", "run_failed"} <= events
    about_run = [line for line in lines if line.get("run_id") == str(sub.run_id)]
    ids = {"run_id": str(sub.run_id), "thread_id": str(thread_id)}
    # The handler's own lines name nothing; the worker's context does.
    handler = [line for line in about_run if line["logger"] == "tests.handlers"]
    assert [(line["message"], line["attempt"]) for line in handler] == [
        ("scripted attempt 1", 1),
        ("scripted attempt 2", 2),
    ]
    assert all(line.items() >= ids.items() for line in handler)
    [failed] = [line for line in about_run if line.get("event") == "run_failed"]
    assert failed.items() >= {**ids, "attempt": 1, "level": "INFO"}.items()
    # Lines about no run carry no run's ids.
    started = next(line for line in lines if line.get("event") == "worker_started")
    assert "run_id" not in started and "worker_id" in started


def test_the_log_format_is_checked(database_url: str) -> None:
    bad_flag = run_cli(database_url, "migrate", "--log-format", "xml")
    assert bad_flag.returncode == 2 and "--log-format" in bad_flag.stderr
    bad_env = run_cli(database_url, "migrate", PGQUEUE_LOG_FORMAT="xml")
    assert bad_env.returncode != 0
    assert "PGQUEUE_LOG_FORMAT" in bad_env.stderr and "Traceback" not in bad_env.stderr
    # migrate logs (alembic) through the root logger: JSON lines too.
    migrated = run_cli(database_url, "migrate", PGQUEUE_LOG_FORMAT="json")
    assert migrated.returncode == 0, migrated.stderr
    json_lines(migrated.stderr)


def test_the_http_server_logs_json_lines(database_url: str) -> None:
    # $PGQUEUE_LOG_FORMAT this time; DEBUG so that there are lines to read
    # (asyncio's, the pools').
    env = {"PGQUEUE_LOG_FORMAT": "json", "PGQUEUE_LOG_LEVEL": "DEBUG"}
    with server_process(database_url, command="server", env=env) as server:
        assert httpx.get(server.url + "/ok", timeout=30).status_code == 200
        output = server.log()
    # The log file has stdout too: the lines the server prints for people.
    logged = [line for line in output.splitlines() if not line.startswith("pgqueue: ")]
    lines = json_lines("\n".join(logged))
    assert lines and all(line["level"] and line["logger"] for line in lines)


def test_a_line_about_another_run_keeps_its_own_ids() -> None:
    bound, other = uuid.uuid4(), uuid.uuid4()
    thread = uuid.uuid4()

    def filtered(**extra: Any) -> logging.LogRecord:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.__dict__.update(extra)
        logs.bind_run(bound, thread, 3)
        logs.RunFilter().filter(record)
        return record

    # Bound in a context of its own, as the worker's run task has.
    plain = contextvars.Context().run(filtered)
    assert (plain.run_id, plain.thread_id, plain.attempt) == (str(bound), str(thread), 3)
    named = contextvars.Context().run(filtered, run_id=str(other), attempt=1)
    assert (named.run_id, named.attempt, getattr(named, "thread_id", None)) == (str(other), 1, None)
    line = json.loads(logs.JsonFormatter().format(plain))
    assert line["run_id"] == str(bound) and line["attempt"] == 3
    assert logs.Tagged(logging.Formatter("%(message)s")).format(plain) == (
        f"m [run_id={bound} thread_id={thread} attempt=3]"
    )

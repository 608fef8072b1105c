"""``pgqueue serve --workers N``: N whole serve processes on one port
(server/prefork.py), as real subprocesses with real signals."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

import asyncpg
from langgraph_sdk import get_client

from tests.support.scrape import scrape
from tests.support.server import ServerProcess, server_process

PIDS = re.compile(r"^pgqueue: 2 server processes share the port \(pids (\d+), (\d+)\)$", re.M)
DEADLINE = 60.0


def _children(server: ServerProcess) -> list[int]:
    found = PIDS.search(server.log())
    assert found is not None, server.log()
    return [int(found.group(1)), int(found.group(2))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that its parent has not reaped yet counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


async def _wait_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + DEADLINE
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if _alive(p)]}"
        await asyncio.sleep(0.1)


async def test_two_processes_share_the_port_run_the_runs_and_stop_together(
    database_url: str,
) -> None:
    with server_process(database_url, "--workers", "2") as server:
        children = _children(server)
        assert server.proc.pid not in children
        # Each child runs its own workers: both registered, by their pid.
        conn = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + DEADLINE
            while set(children) - {r["pid"] for r in await conn.fetch("SELECT pid FROM workers")}:
                assert time.monotonic() < deadline, "a child registered no worker"
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        client = get_client(url=server.url)
        threads = [await client.threads.create() for _ in range(8)]
        outputs = await asyncio.gather(
            *(client.runs.wait(t["thread_id"], "echo", input={"count": 1}) for t in threads)
        )
        assert all(isinstance(o, dict) for o in outputs), outputs
        runs = [r for t in threads for r in await client.runs.list(t["thread_id"])]
        assert {r["status"] for r in runs} == {"success"}
        # Whichever child answers /metrics, its counters are both children's
        # (prometheus_client's multiprocess mode, in a directory the parent made).
        for _ in range(4):
            claimed = scrape(server.url).sum("pgqueue_runs_claimed_total")
            assert claimed == len(threads), server.log()
        # One line per process for everything but the "serving" line, said once.
        assert server.log().count("pgqueue: serving on") == 1
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(DEADLINE) == 0, server.log()
    await _wait_gone(children)


async def test_a_child_that_dies_takes_the_others_down(database_url: str) -> None:
    with server_process(database_url, "--workers", "2") as server:
        first, second = _children(server)
        os.kill(first, signal.SIGKILL)
        assert server.proc.wait(DEADLINE) == 1, server.log()
        assert "exited with status" in server.log()
    await _wait_gone([first, second])


async def test_children_stop_when_their_parent_is_killed(database_url: str) -> None:
    with server_process(database_url, "--workers", "2") as server:
        children = _children(server)
        server.proc.kill()  # SIGKILL: the parent cannot pass anything on
        server.proc.wait(DEADLINE)
    await _wait_gone(children)

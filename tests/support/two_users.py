"""Helpers for the authorization tests (tests/server/test_authorization*.py):
servers with an Auth of tests/graphs/auth, users of a test's own, the status
a call answered, and what user a made for the walk. The fixtures
(``owners_server``, ``users``) are in tests/server/conftest.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.procs import REPO, write_config
from tests.support.server import ServerProcess

AUTH_DIR = REPO / "tests" / "graphs" / "auth"
# The system assistant of the graph "whoami" (PLATFORM_API.md, Identifiers).
SYSTEM_ASSISTANT = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "whoami"))
# Not due while a test runs (the first of January, midnight).
YEARLY = "0 0 1 1 *"


def auth_config(directory: Path, auth_file: str) -> Path:
    return write_config(
        directory,
        graphs={"whoami": "auth/graph.py:whoami_graph"},
        auth={"path": f"{AUTH_DIR / auth_file}:auth"},
    )


def fresh(name: str) -> str:
    """A user of the test's own (owners.py: the token names the user)."""
    return f"{name}{uuid.uuid4().hex[:10]}"


def client_of(server: ServerProcess, user: str) -> LangGraphClient:
    return get_client(url=server.url, headers={"Authorization": f"Bearer token-{user}"})


async def status_of(call: Awaitable[Any], timeout: float = 60) -> int:
    """The status a call answered (200 when it did not raise); -1 when it
    had not answered after ``timeout`` seconds (a join of a run b should
    not see would wait for that run)."""
    try:
        await asyncio.wait_for(call, timeout)
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    except TimeoutError:
        return -1
    return 200


async def drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [part async for part in stream]


def ids(found: Sequence[Mapping[str, Any]], key: str) -> set[str]:
    return {str(x[key]) for x in found}


@dataclass(frozen=True)
class Owned:
    """What user a made, and b's own thread (to aim a's ids from)."""

    user: str
    marker: str
    thread: str  # with a finished run (resumable: its events are kept)
    run: str
    checkpoint: str
    busy_thread: str  # with a run pending for a day
    pending_run: str
    assistant: str  # at version 2
    thread_cron: str
    cron: str  # stateless, with a's assistant
    namespace: str  # a's store items: (user, namespace) / "k"
    b_thread: str

    def ids(self) -> list[str]:
        return [
            self.thread,
            self.run,
            self.checkpoint,
            self.busy_thread,
            self.pending_run,
            self.assistant,
            self.thread_cron,
            self.cron,
        ]

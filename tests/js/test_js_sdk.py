"""The JavaScript SDK (@langchain/langgraph-sdk, pinned in package.json)
against a real ``pgqueue serve``: each ``*.test.mjs`` file here is a
``node --test`` suite that was first checked against ``langgraph dev``.

To run a file by hand against any server:
``cd tests/js && LANGGRAPH_URL=http://127.0.0.1:2024 node --test threads.test.mjs``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import dbs
from tests.support.node import JS_DIR, ensure_packages, node
from tests.support.server import ServerProcess, server_process

SUITES = sorted(p.name for p in JS_DIR.glob("*.test.mjs"))


@pytest.fixture(scope="session")
def js_dir() -> Path:
    return ensure_packages()


@pytest.fixture(scope="module")
def server(admin_url: str, template_db: str) -> Iterator[ServerProcess]:
    name = dbs.create_database(admin_url, template_db)
    try:
        with server_process(dbs.with_database(admin_url, name)) as proc:
            yield proc
    finally:
        dbs.drop_database(admin_url, name)


def test_the_suites_are_found() -> None:
    # An empty parametrization would only skip test_js_sdk.
    assert SUITES, f"no *.test.mjs in {JS_DIR}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
def test_js_sdk(suite: str, js_dir: Path, server: ServerProcess, tmp_path: Path) -> None:
    env = {**os.environ, "LANGGRAPH_URL": server.url, "GATE_DIR": str(tmp_path), "NO_COLOR": "1"}
    done = subprocess.run(
        [node(), "--test", "--test-reporter=spec", suite],
        cwd=js_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, (
        f"node --test {suite} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n"
        f"--- server log (end)\n{server.log()[-20000:]}"
    )

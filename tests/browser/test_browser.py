"""The JS SDK in a real browser, calling pgqueue on another origin.

A static page (index.html and app.mjs, bundled here with esbuild from
tests/js/node_modules) is served from one origin by a small HTTP server in
this process; ``pgqueue serve`` runs on another. Headless Chromium (Debian's,
driven by Playwright) loads the page, which streams a run token by token,
rejoins it after a reload and lists the graph's threads, all into the DOM
the test reads. Every cross-origin call goes through the browser's CORS
checks, preflights included: nothing is faked or intercepted.

The negative case starts the server with a CORS policy that allows another
origin only, and sees the browser refuse the page its calls.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.graphs.graphs import REPLY
from tests.support.node import JS_DIR, ensure_packages
from tests.support.procs import REPO
from tests.support.server import server_process
from tests.support.system import require_system

HERE = Path(__file__).resolve().parent
NODE_MODULES = JS_DIR / "node_modules"
CHROMIUM = Path("/usr/bin/chromium")
GRAPHS = REPO / "tests" / "graphs"

# The machine running the suite may be loaded: generous, and only ever a
# limit on waiting for a condition, never a pace.
DEADLINE_MS = 60_000


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with index.html and app.js (app.mjs and the SDK, bundled)."""
    ensure_packages()
    out = tmp_path_factory.mktemp("browser-page")
    shutil.copy(HERE / "index.html", out / "index.html")
    # NODE_PATH: esbuild resolves the bare "@langchain/langgraph-sdk" from
    # tests/js/node_modules, which is not an ancestor of tests/browser.
    done = subprocess.run(
        [
            str(NODE_MODULES / ".bin" / "esbuild"),
            str(HERE / "app.mjs"),
            "--bundle",
            "--format=esm",
            "--platform=browser",
            f"--outfile={out / 'app.js'}",
        ],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"esbuild failed:\n{done.stderr}"
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request on stderr says nothing the test checks


@pytest.fixture(scope="session")
def page_origin(bundle: Path) -> Iterator[str]:
    """The page's origin: a static file server on a port of its own, so a
    different origin from any pgqueue server's."""
    handler = functools.partial(_QuietHandler, directory=str(bundle))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_system(CHROMIUM.exists(), f"{CHROMIUM} is missing (Debian: chromium)", installs="it")
    # Debian's chromium, not a browser Playwright downloads.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console() -> list[str]:
    """What the page logs to its console (CORS refusals land there)."""
    return []


@pytest.fixture
def page(browser: Browser, console: list[str]) -> Iterator[Page]:
    """A page in a fresh context (its own sessionStorage)."""
    context = browser.new_context()
    page = context.new_page()
    page.on("console", lambda message: console.append(_console_line(message)))
    try:
        yield page
    finally:
        context.close()


def _console_line(message: ConsoleMessage) -> str:
    return f"{message.type}: {message.text}"


def _wait_phase(page: Page, console: list[str], expected: str) -> None:
    """Wait until the page is done (``expected`` or "failed"), then insist on
    ``expected``, with the page's error and console in the message."""
    page.wait_for_function(
        "(expected) => ['failed', expected].includes("
        "document.getElementById('status').dataset.phase)",
        arg=expected,
        timeout=DEADLINE_MS,
    )
    phase = page.get_attribute("#status", "data-phase")
    error = page.text_content("#error")
    logged = "\n".join(console)
    assert phase == expected, f"page phase {phase!r}: {error}\nconsole:\n{logged}"


def _tokens(page: Page, container: str) -> list[str]:
    return page.eval_on_selector_all(
        f"{container} .token", "spans => spans.map(s => s.textContent)"
    )


def test_page_streams_rejoins_after_reload_and_lists_threads(
    database_url: str, page_origin: str, page: Page, console: list[str]
) -> None:
    # tests/graphs/langgraph.json has no "http" key: any origin is allowed.
    with server_process(database_url) as server:
        page.goto(f"{page_origin}/index.html?api={server.url}")
        _wait_phase(page, console, "streamed")
        streamed = _tokens(page, "#tokens")
        # Token by token (the fake model streams a word or a space at a time),
        # and the whole reply.
        assert len(streamed) > 1, streamed
        assert "".join(streamed) == REPLY
        stored = json.loads(page.evaluate("sessionStorage.getItem('pgqueue-browser-test:run')"))
        # onRunCreated saw the run's id: the server exposes Content-Location
        # to the page's origin.
        assert stored["createdRunId"] == stored["runId"], stored

        page.reload()
        _wait_phase(page, console, "rejoined")
        # The new document starts empty: what is there came from joinStream.
        assert _tokens(page, "#tokens") == []
        assert _tokens(page, "#replay") == streamed
        listed = page.eval_on_selector_all("#threads li", "items => items.map(i => i.textContent)")
        assert stored["threadId"] in listed, listed


def test_page_is_refused_by_a_cors_policy_for_another_origin(
    database_url: str, page_origin: str, page: Page, console: list[str], tmp_path: Path
) -> None:
    allowed = "http://example.invalid"
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "graphs": {"chat": f"{GRAPHS / 'graphs.py'}:chat_graph"},
                # Methods and headers all allowed: the page's origin is the
                # only thing the policy refuses.
                "http": {
                    "cors": {
                        "allow_origins": [allowed],
                        "allow_methods": ["*"],
                        "allow_headers": ["*"],
                    }
                },
            }
        )
    )
    with server_process(database_url, config=config) as server:
        page.goto(f"{page_origin}/index.html?api={server.url}")
        _wait_phase(page, console, "failed")
        # fetch() rejects with a bare TypeError when CORS refuses a response
        # (the page cannot tell why); the SDK wraps it as a ConnectionError.
        error = page.text_content("#error") or ""
        assert "Failed to fetch" in error, error
        # Why is only in the browser's console.
        logged = "\n".join(console)
        assert f"from origin '{page_origin}' has been blocked by CORS policy" in logged, logged

        # The policy is the configured one, not a server that answers no
        # preflight at all: the allowed origin gets its preflight approved.
        preflight = httpx.options(
            f"{server.url}/threads",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers.get("access-control-allow-origin") == allowed
        # The refused preflight kept the page's POST from reaching the server.
        assert httpx.post(f"{server.url}/threads/search", json={}).json() == []

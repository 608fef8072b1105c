"""``/dashboard`` in a real browser (Debian's headless Chromium, through
Playwright), on a ``pgqueue serve`` that ran real runs: successes, a run
that failed, one retried once, and one still running on the in-process
worker.

The chart is read as pixels: a screenshot of the chart's box must hold the
success and the error colours of its bars (the PNG is decoded here, in pure
Python). The failure's error and the retried run's timeline (opened by its
link, ``#run=<id>``) must be on the page. With PGQUEUE_DASHBOARD_SCREENSHOT
set to a path, the whole page is saved there too (docs/dashboard.png is
made this way).
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.server import ServerProcess, server_process
from tests.support.system import require_system

CHROMIUM = Path("/usr/bin/chromium")
# Only ever a limit on waiting for a condition, never a pace.
DEADLINE_MS = 90_000
SUCCESS = (0x16, 0xA3, 0x4A)
ERROR = (0xDC, 0x26, 0x26)
FAILURE_MESSAGE = "the node failed on purpose"


# -- a PNG, decoded ------------------------------------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_pixels(data: bytes) -> list[tuple[int, int, int]]:
    """The RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what
    Chromium's screenshots are)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    channels = 4 if color == 6 else 3
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
        rows.append(line)
        previous = line
    return [(row[x], row[x + 1], row[x + 2]) for row in rows for x in range(0, stride, channels)]


def near(pixel: tuple[int, int, int], color: tuple[int, int, int]) -> bool:
    return all(abs(p - c) <= 12 for p, c in zip(pixel, color, strict=True))


# -- the server and its runs ------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_system(CHROMIUM.exists(), f"{CHROMIUM} is missing (Debian: chromium)", installs="it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []

    def log(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")

    page.on("console", log)
    try:
        yield page, console
    finally:
        context.close()


def start(http: httpx.Client, graph: str, payload: dict[str, Any]) -> tuple[str, str]:
    thread = http.post("/threads", json={}).json()["thread_id"]
    run = http.post(f"/threads/{thread}/runs", json={"assistant_id": graph, "input": payload})
    assert run.status_code == 200, run.text
    return thread, run.json()["run_id"]


def join(http: httpx.Client, thread: str, run: str) -> dict[str, Any]:
    http.get(f"/threads/{thread}/runs/{run}/join").raise_for_status()
    answer: dict[str, Any] = http.get(f"/threads/{thread}/runs/{run}").json()
    return answer


def next_bucket(http: httpx.Client) -> None:
    """Wait until the chart's current 5-second bucket is a new one, so that
    the next runs land in bars of their own."""

    def current() -> str:
        overview = http.get("/dashboard/api/overview", params={"window": "5m"}).json()
        return str(overview["series"][-1]["bucket_start"])

    first = current()
    deadline = time.monotonic() + 60
    while current() == first:
        assert time.monotonic() < deadline, "the chart's buckets did not move in 60 s"
        time.sleep(0.2)


def run_all(http: httpx.Client, runs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [join(http, thread, run) for thread, run in runs]


@pytest.fixture
def workload(database_url: str) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server that ran successes and failures in three waves (three bars
    of the chart), one run retried once, and is running a long one; the ids
    by role."""
    with (
        server_process(database_url) as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
    ):
        failed = start(http, "fails", {})
        run_all(http, [start(http, "echo", {"count": i}) for i in range(3)])
        assert join(http, *failed)["status"] == "error"
        next_bucket(http)
        retried = start(http, "flaky", {})
        run_all(http, [start(http, "echo", {"count": i}) for i in range(5)])
        # Its first attempt raised RetriableError (the timeline shows both).
        assert join(http, *retried)["status"] == "success"
        next_bucket(http)
        wave = [start(http, "echo", {"count": i}) for i in range(2)]
        run_all(http, [*wave, start(http, "fails", {})])
        # A run the worker holds while the page is open.
        held = start(http, "ticks", {"until": 1_000_000, "delay": 0.2})
        ids = {"failed": failed[1], "retried": retried[1], "held": held[1]}
        try:
            yield server, ids
        finally:
            http.post(f"/threads/{held[0]}/runs/{held[1]}/cancel")


def test_the_dashboard_draws_the_queue_its_failures_and_a_runs_timeline(
    workload: tuple[ServerProcess, dict[str, str]], page: tuple[Page, list[str]]
) -> None:
    server, ids = workload
    tab, console = page
    tab.goto(f"{server.url}/dashboard#window=5m&run={ids['retried']}")
    logged = "\n".join(console)

    # The chart, with bars of both colours; the failure; the held run.
    tab.wait_for_function(
        "() => document.querySelector('#chart svg .bar-success')"
        " && document.querySelector('#chart svg .bar-error')",
        timeout=DEADLINE_MS,
    )
    tab.wait_for_function(
        "(id) => document.querySelector(`#workers [data-run-id='${id}']`)",
        arg=ids["held"],
        timeout=DEADLINE_MS,
    )
    failures = tab.text_content("#failures") or ""
    assert FAILURE_MESSAGE in failures, failures
    assert tab.query_selector(f"#failures [data-run-id='{ids['failed']}']") is not None

    # The timeline of the retried run: two attempts, the second one's
    # holder, its checkpoints and events, and the final status.
    tab.wait_for_function(
        "(id) => document.querySelector('#timeline').dataset.runId === id",
        arg=ids["retried"],
        timeout=DEADLINE_MS,
    )
    steps = tab.eval_on_selector_all(
        "#timeline [data-step]", "items => items.map(i => [i.dataset.step, i.textContent])"
    )
    kinds = [kind for kind, _ in steps]
    assert kinds == ["submitted", "attempt", "attempt", "success"], steps
    second = steps[2][1]
    assert "attempt 2" in second and "held by " in second, second
    assert re.search(r"(^|\D)[1-9]\d* checkpoint\(s\)", second), second
    assert re.search(r"(^|\D)[1-9]\d* event\(s\)", second), second
    assert tab.get_attribute("#timeline", "data-status") == "success"

    # The chart as pixels: the bars' colours inside the chart's own box.
    chart = tab.locator("#chart svg")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 100, box
    pixels = png_pixels(chart.screenshot())
    assert any(near(p, SUCCESS) for p in pixels), "no success bar drawn"
    assert any(near(p, ERROR) for p in pixels), "no error bar drawn"
    assert sum(1 for p in pixels if p != (255, 255, 255)) > len(pixels) // 100

    # Live: the page keeps polling.
    polls = int(tab.get_attribute("#status", "data-polls") or 0)
    tab.wait_for_function(
        "(n) => Number(document.getElementById('status').dataset.polls) > n",
        arg=polls,
        timeout=DEADLINE_MS,
    )
    assert "update failed" not in (tab.text_content("#status") or ""), logged

    target = os.environ.get("PGQUEUE_DASHBOARD_SCREENSHOT")
    if target:
        tab.screenshot(path=target, full_page=True)


def test_a_run_that_does_not_exist_says_so(database_url: str, page: tuple[Page, list[str]]) -> None:
    tab, _ = page
    with server_process(database_url) as server:
        missing = "00000000-0000-0000-0000-000000000000"
        tab.goto(f"{server.url}/dashboard#run={missing}")
        tab.wait_for_function(
            "() => document.querySelector('#timeline-body .dead')", timeout=DEADLINE_MS
        )
        assert "404" in (tab.text_content("#timeline-body") or "")
        # The rest of the page is drawn all the same.
        tab.wait_for_function("() => document.querySelector('#chart svg')", timeout=DEADLINE_MS)

"""Every route of the API, sent as user b at user a's resources.

User a (tests/graphs/auth/owners.py: the owner is stamped and filtered)
makes one of everything, with a marker string in it. Then, for every
(method, path) that ``/openapi.json`` lists, b sends requests that name
a's ids (in the path or the body), with bodies valid enough to get past
validation to authorization. The table (``probes`` in
tests/support/route_probes.py) says, per request, what is right:

- ``hidden``: a's resource answers as a missing one: 404 (403 allowed;
  409 where creating with a's id, which is taken);
- ``as_missing``: a route where a missing id is no error (prune, cancel
  many, search by id): the answer is the one for fresh ids;
- ``opened``: b's own listing, search, count or creation: 2xx, and what
  the check says (an empty result where only a's would match);
- ``public``: open to everyone (health, info, this document).

Never a 5xx, and no answer carries a's ids or the marker (but the ids b
named itself, which an error may quote). A route that ``/openapi.json``
lists and the table does not know fails the test: a new route needs a
probe, and so gets checked for authorization. Afterwards a's resources,
read as a, are exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.support.route_probes import (
    AS_MISSING,
    HIDDEN,
    OPENED,
    OPTIONAL_PUBLIC,
    PUBLIC,
    Probe,
    probes,
    swapped,
)
from tests.support.server import ServerProcess
from tests.support.two_users import YEARLY, Owned

DEADLINE = 60.0  # seconds for one request's whole answer


# -- sending -------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # -1: no complete answer before the deadline
    text: str


async def send(http: httpx.AsyncClient, probe: Probe, swap: dict[str, str]) -> Answer:
    content = probe.content(swap)
    headers = dict(probe.headers)
    if content is not None:
        headers["Content-Type"] = "application/json"
    params = {k: swapped(v, swap) for k, v in probe.query.items()}

    async def answer() -> Answer:
        async with http.stream(
            probe.method, probe.url(swap), params=params, content=content, headers=headers
        ) as response:
            if probe.expect == HIDDEN and response.is_success:
                # Wrong already; a stream of a's pending run would not end.
                async for chunk in response.aiter_text():
                    return Answer(response.status_code, chunk)
                return Answer(response.status_code, "")
            return Answer(response.status_code, (await response.aread()).decode(errors="replace"))

    try:
        return await asyncio.wait_for(answer(), DEADLINE)
    except TimeoutError:
        return Answer(-1, f"(no complete answer within {DEADLINE:.0f} s)")


def parsed(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text


async def judge(http: httpx.AsyncClient, probe: Probe, o: Owned) -> str | None:
    """What is wrong with b's answer to ``probe``, or None."""
    got = await send(http, probe, {})
    problems = []
    if got.status == -1:
        problems.append("no answer (hung)")
    elif got.status >= 500:
        problems.append("a server error")
    if probe.expect == HIDDEN:
        allowed = {403, 404} | ({409} if probe.taken else set())
        if got.status not in allowed:
            problems.append(f"expected {sorted(allowed)} (a's resource, hidden)")
    elif probe.expect in (OPENED, PUBLIC):
        if not 200 <= got.status < 300:
            problems.append("expected 2xx (b's own, or open to all)")
        elif probe.check is not None and not probe.check(parsed(got.text)):
            problems.append("expected an empty result (only a's would match)")
    elif probe.expect == AS_MISSING:
        fresh = {old: str(uuid.uuid4()) for old in o.ids()}
        twin = await send(http, probe, fresh)
        back = {new: old for old, new in fresh.items()}
        same = not probe.same_body or parsed(swapped(twin.text, back)) == parsed(got.text)
        if twin.status != got.status or not same:
            problems.append(f"expected the answer for fresh ids: {twin.status} {twin.text[:300]!r}")
        if twin.status >= 500 or twin.status == -1:
            problems.append(f"fresh ids: {twin.status}")
    asked = probe.describe()
    leaked = [x for x in [o.marker, o.user, *o.ids()] if x in got.text and x not in asked]
    if leaked:
        problems.append(f"the answer carries a's {leaked}")
    if not problems:
        return None
    why = f" ({probe.why})" if probe.why else ""
    return f"{probe.describe()}{why}: {'; '.join(problems)}; got {got.status} {got.text[:400]!r}"


# -- a's resources -------------------------------------------------------------


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer token-{user}"}


async def make_owned(server: ServerProcess, a: str, b: str) -> Owned:
    marker = f"marker{uuid.uuid4().hex}"
    namespace = f"ns{uuid.uuid4().hex[:12]}"
    ca = get_client(url=server.url, headers=bearer(a))
    cb = get_client(url=server.url, headers=bearer(b))
    try:
        mark = {"marker": marker}
        thread = (await ca.threads.create(metadata=mark))["thread_id"]
        parts = [
            p
            async for p in ca.runs.stream(
                thread, "whoami", input={"user": marker}, metadata=mark, stream_resumable=True
            )
        ]
        assert parts[-1].data == {"user": a, "permissions": []}, parts
        [run] = await ca.runs.list(thread)
        assert run["status"] == "success", run
        checkpoint = (await ca.threads.get_state(thread))["checkpoint"]["checkpoint_id"]
        busy = (await ca.threads.create(metadata=mark))["thread_id"]
        pending = await ca.runs.create(
            busy, "whoami", input={"user": marker}, metadata=mark, after_seconds=86400
        )
        assistant = await ca.assistants.create("whoami", name=marker, metadata=mark)
        aid = assistant["assistant_id"]
        assert (await ca.assistants.update(aid, metadata={**mark, "v": 2}))["version"] == 2
        thread_cron = await ca.crons.create_for_thread(
            thread, "whoami", schedule=YEARLY, input={"user": marker}, metadata=mark
        )
        cron = await ca.crons.create(aid, schedule=YEARLY, input={"user": marker}, metadata=mark)
        await ca.store.put_item([namespace], "k", mark)
        b_thread = (await cb.threads.create())["thread_id"]
    finally:
        await ca.aclose()
        await cb.aclose()
    return Owned(
        user=a,
        marker=marker,
        thread=thread,
        run=run["run_id"],
        checkpoint=str(checkpoint),
        busy_thread=busy,
        pending_run=pending["run_id"],
        assistant=aid,
        # The SDK types a cron as a Run.
        thread_cron=str(dict(thread_cron)["cron_id"]),
        cron=str(dict(cron)["cron_id"]),
        namespace=namespace,
        b_thread=b_thread,
    )


async def snapshot(http: httpx.AsyncClient, o: Owned) -> dict[str, Any]:
    """Everything a can read of what a made, as a reads it."""
    reads: list[tuple[str, str, Any]] = [
        ("GET", f"/threads/{o.thread}", None),
        ("GET", f"/threads/{o.busy_thread}", None),
        ("GET", f"/threads/{o.thread}/state", None),
        ("POST", f"/threads/{o.thread}/history", {"limit": 1000}),
        ("GET", f"/threads/{o.thread}/runs", None),
        ("GET", f"/threads/{o.busy_thread}/runs", None),
        ("GET", f"/threads/{o.thread}/runs/{o.run}/join", None),
        ("POST", "/threads/search", {"limit": 1000, "sort_by": "thread_id"}),
        ("GET", f"/assistants/{o.assistant}", None),
        ("POST", f"/assistants/{o.assistant}/versions", {"limit": 1000}),
        ("POST", "/assistants/search", {"limit": 1000, "sort_by": "assistant_id"}),
        ("POST", "/runs/crons/search", {"limit": 1000, "sort_by": "cron_id"}),
        ("GET", f"/store/items?namespace={o.namespace}&key=k", None),
        ("POST", "/store/items/search", {"namespace_prefix": [], "limit": 1000}),
        ("POST", "/store/namespaces", {}),
    ]
    seen: dict[str, Any] = {}
    for method, path, body in reads:
        r = await http.request(method, path, json=body)
        seen[f"{method} {path}"] = (r.status_code, parsed(r.text))
    return seen


@dataclass
class Users:
    a: str
    b: str
    a_http: httpx.AsyncClient
    b_http: httpx.AsyncClient


@pytest.fixture
async def http_users(owners_server: ServerProcess) -> AsyncIterator[Users]:
    """Two fresh users a and b, with plain HTTP clients (``owners_server``,
    with owners.py, is in tests/server/conftest.py)."""
    a, b = f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"

    def http(user: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=owners_server.url, headers=bearer(user), timeout=DEADLINE)

    made = Users(a, b, http(a), http(b))
    yield made
    await made.a_http.aclose()
    await made.b_http.aclose()


# -- the walk ------------------------------------------------------------------

ROUTE_PARAM = re.compile(r"{(\w+)}")


async def test_user_b_reaches_none_of_user_as_resources_on_any_route(
    owners_server: ServerProcess, http_users: Users
) -> None:
    a_http, b_http = http_users.a_http, http_users.b_http
    o = await make_owned(owners_server, http_users.a, http_users.b)
    before = await snapshot(a_http, o)
    assert all(status == 200 for status, _ in before.values()), before
    assert o.marker in json.dumps(before[f"GET /threads/{o.thread}"])  # a sees a's

    table = probes(o)
    spec = await b_http.get("/openapi.json")
    assert spec.status_code == 200, spec.text
    listed = {
        (method.upper(), path)
        for path, operations in spec.json()["paths"].items()
        for method in operations
    }
    known = {(p.method, p.route) for p in table}
    failures = [
        f"{method} {path}: listed by /openapi.json but not in the probe table: add a probe "
        "that addresses a's resources (and authorize the route)"
        for method, path in sorted(listed - known)
    ]
    failures += [
        f"{method} {path}: in the probe table but not listed by /openapi.json"
        for method, path in sorted(known - listed - OPTIONAL_PUBLIC)
    ]
    for p in table:
        if set(ROUTE_PARAM.findall(p.route)) != set(p.path):
            failures.append(f"{p.method} {p.route}: the probe fills {sorted(p.path)}")

    for p in table:
        if (p.method, p.route) not in listed or set(ROUTE_PARAM.findall(p.route)) != set(p.path):
            continue
        problem = await judge(b_http, p, o)
        if problem:
            failures.append(problem)

    after = await snapshot(a_http, o)
    for key in before:
        if after[key] != before[key]:
            failures.append(
                f"a's {key} changed during b's requests:\n  before {before[key]}\n"
                f"  after  {after[key]}"
            )
    assert not failures, f"{len(failures)} problem(s):\n" + "\n".join(failures)

"""Schemathesis against the API's OpenAPI document: every operation, valid
and invalid requests; no answer may be a 5xx, and the server may log no
traceback.

Bounded for CI: ``PGQUEUE_FUZZ_EXAMPLES`` (default 25) examples per
operation in the fuzzing phase, after schemathesis' examples and coverage
phases (a fixed set of boundary and wrong-type cases per operation).
Derandomized, so a failure reproduces; raise the number for a longer
local run.

Random ids only ever reach "not found", so in the fuzzing phase about
half the bodies and path ids are steered onto things that exist: a real
thread, run, checkpoint, assistant and cron, run requests for the ``echo``
graph (it ends at once, so waits and streams end too), a real graph for
new assistants, a real store namespace. DELETEs keep their random ids.
Steered run requests drop ``after_seconds`` (a run delayed for a year
would hold its thread's queue and every wait behind it) and ``webhook``
(the fuzzer must not call arbitrary hosts). Nothing is excluded.

The REFUSED cases below are what fuzzing (and probing around its finds)
turned up, kept as plain regression tests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from server import routes
from server.openapi import build_spec
from server.routes.meta import _version
from tests.support.server import ServerProcess

EXAMPLES = int(os.environ.get("PGQUEUE_FUZZ_EXAMPLES", "25"))
# PGQUEUE_FUZZ_RANDOM=1: new cases each run (hypothesis prints the seed of a failure).
RANDOM = os.environ.get("PGQUEUE_FUZZ_RANDOM") == "1"
# Waits and streams end with their run; one that does not is cut here (a
# wait that times out fails the case, a stream is read until then).
REQUEST_TIMEOUT = 10.0
FAST_GRAPH = "echo"
# Steered crons fire once a year: never while the test runs.
YEARLY = "0 0 1 1 *"

# Parametrizing needs the operations at collection time, before any server
# runs (schemathesis' fixture-based loader does not work with pytest 9.2):
# the spec is built in-process, and test_live_spec_is_the_fuzzed_one proves
# it is the one the server serves.
SPEC = build_spec(routes.ROUTERS, _version())
schema = schemathesis.openapi.from_dict(SPEC)

# Ids of resources that exist, by path parameter name (filled by `known`).
KNOWN: dict[str, list[str]] = {}
RUN_BODIES = {"RunCreate", "BatchBody", "CronCreate"}


class LogWatch:
    """The server log, read incrementally: what was logged since last time."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.offset = 0

    def new(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode(errors="replace")


@pytest.fixture(scope="module")
def log_watch(server: ServerProcess) -> Iterator[LogWatch]:
    watch = LogWatch(server.log_file.name)
    yield watch
    # What was logged after the last case (a run ending late, say).
    rest = watch.new()
    assert "Traceback" not in rest, rest


@pytest.fixture(scope="module")
def known(server: ServerProcess) -> Iterator[dict[str, list[str]]]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        thread = http.post("/threads", json={"metadata": {"fuzz": True}}).json()["thread_id"]
        http.post(
            f"/threads/{thread}/runs/wait", json={"assistant_id": FAST_GRAPH, "input": {"count": 0}}
        ).raise_for_status()
        run = http.get(f"/threads/{thread}/runs").json()[0]["run_id"]
        checkpoint = http.get(f"/threads/{thread}/state").json()["checkpoint_id"]
        assert checkpoint is not None
        assistant = http.post("/assistants", json={"graph_id": FAST_GRAPH}).json()["assistant_id"]
        cron = http.post(
            f"/threads/{thread}/runs/crons",
            json={"assistant_id": FAST_GRAPH, "schedule": YEARLY},
        ).json()["cron_id"]
        http.put("/store/items", json={"namespace": ["fuzz"], "key": "k", "value": {"a": 1}})
    KNOWN.update(
        thread_id=[thread],
        run_id=[run],
        checkpoint_id=[checkpoint],
        assistant_id=[assistant, FAST_GRAPH],
        cron_id=[cron],
    )
    yield KNOWN
    KNOWN.clear()


def _body_schema(operation: schemathesis.APIOperation) -> str | None:
    """The name of the operation's body model, as the spec refers to it."""
    op = SPEC["paths"][operation.path][operation.method.lower()]
    ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return str(ref["$ref"]).rsplit("/", 1)[-1] if ref and "$ref" in ref else None


def _steer_run(item: Any, cron: bool = False) -> Any:
    if not isinstance(item, dict):
        return item
    steered = {k: v for k, v in item.items() if k not in ("after_seconds", "webhook")}
    steered["assistant_id"] = FAST_GRAPH
    if cron:
        steered["schedule"] = YEARLY
    if "thread_id" in item:
        steered["thread_id"] = KNOWN["thread_id"][0]
    return steered


def _steer_body(operation: schemathesis.APIOperation, body: Any) -> Any:
    kind = _body_schema(operation)
    if kind in RUN_BODIES:
        if kind == "BatchBody" and isinstance(body, dict) and isinstance(body.get("runs"), list):
            return {**body, "runs": [_steer_run(item) for item in body["runs"]]}
        return _steer_run(body, cron=kind == "CronCreate")
    if not isinstance(body, dict):
        return body
    if kind == "AssistantCreate":
        return {**body, "graph_id": FAST_GRAPH}
    if kind in ("StorePut", "StoreDelete"):
        return {**body, "namespace": ["fuzz"]}
    return body


@schema.hook
def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    if not KNOWN or context.operation is None:
        return st.just(body)
    return st.sampled_from([body, _steer_body(context.operation, body)])


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, params: Any
) -> st.SearchStrategy[Any]:
    # A DELETE would remove the very resources the other operations are
    # steered to; deleting is the functional tests' business.
    operation = context.operation
    if not KNOWN or not isinstance(params, dict) or operation is None:
        return st.just(params)
    if operation.method.upper() == "DELETE":
        return st.just(params)
    return st.fixed_dictionaries(
        {name: st.sampled_from([value, *KNOWN.get(name, [])]) for name, value in params.items()}
    )


def test_live_spec_is_the_fuzzed_one(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/openapi.json").json() == SPEC
    # Schemathesis' copy of the OpenAPI 3.1 schema (it does not check the
    # document as a whole when it loads one).
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert [e.message for e in OPENAPI_31_VALIDATOR.iter_errors(SPEC)] == []


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(
    case: Any, server: ServerProcess, known: dict[str, list[str]], log_watch: LogWatch
) -> None:
    case.call_and_validate(
        base_url=server.url, checks=[not_a_server_error], timeout=REQUEST_TIMEOUT
    )
    logged = log_watch.new()
    assert "Traceback" not in logged, logged


# Requests that once answered 5xx (or reached PostgreSQL before being
# refused), found by this fuzzer or around what it found: each is a 422
# naming the field.
BIG = 10**20
NESTED = '{"metadata": ' + '{"a": ' * 300 + "1" + "}" * 300 + "}"
REFUSED: list[tuple[str, str, Any, str]] = [
    ("POST", "/runs/wait", {"assistant_id": "echo", "config": {"configurable": 5}}, "config"),
    ("POST", "/assistants", {"graph_id": "echo", "config": {"metadata": [1]}}, "config"),
    ("POST", "/store/items/search", {"filter": {"x": 2**64}}, "filter.x"),
    ("POST", "/store/items/search", {"offset": BIG}, "offset"),
    ("POST", "/store/namespaces", {"max_depth": BIG}, "max_depth"),
    ("POST", "/runs/crons/search", {"offset": BIG}, "offset"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": 1e-7}, "ttl"),
    ("PUT", "/store/items", {"namespace": ["a"], "key": "k", "value": {}, "ttl": 1e300}, "ttl"),
    (
        "POST",
        "/runs/crons",
        {"assistant_id": "echo", "schedule": "0 0 1 1 *", "end_time": "9999-12-31T23:59:59-14:00"},
        "end_time",
    ),
    ("POST", "/threads", {"metadata": {"k": "a\x00"}}, "metadata.k"),
    (
        "POST",
        "/runs/batch",
        [{"assistant_id": "echo", "metadata": {"a": "\x00"}}],
        "body.0.metadata.a",
    ),
    ("POST", "/threads", b'{"metadata": {"a": "\\ud800"}}', "metadata.a"),
    ("POST", "/threads", b'{"metadata": {"a": "\xed\xa0\x80"}}', "body"),
    ("POST", "/threads", b'{"metadata": {"a": 1e400}}', "body"),
    ("POST", "/threads", NESTED.encode(), "metadata.a.a"),
    ("POST", "/threads", b"[" * 5000 + b"]" * 5000, "body"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), REFUSED)
def test_refused_naming_the_field(
    server: ServerProcess, method: str, path: str, body: Any, field: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.request(method, server.url + path, content=content)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["detail"].startswith(field), error
    assert error["errors"][0]["field"].startswith(field), error


def test_numbers_beyond_64_bits_round_trip(server: ServerProcess) -> None:
    # jsonb keeps any number and answers an integral 1e300 as 301 digits:
    # more than orjson writes.
    metadata = {"big": BIG, "float": 1e300}
    created = httpx.post(server.url + "/threads", json={"metadata": metadata})
    assert created.status_code == 200, created.text
    thread_id = created.json()["thread_id"]
    got = httpx.get(f"{server.url}/threads/{thread_id}").json()
    assert got["metadata"] == {"big": BIG, "float": 10**300}
    found = httpx.post(server.url + "/threads/search", json={"metadata": {"big": BIG}})
    assert [t["thread_id"] for t in found.json()] == [thread_id]

"""The probe table of tests/server/test_authorization_walk.py: for every
route of the API, the requests user b sends at user a's resources, and what
is right for each (``hidden``, ``as_missing``, ``opened``, ``public``: the
walk's docstring says what each means). A route that ``/openapi.json``
lists and this table does not know fails the walk, so a new route needs a
probe here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.two_users import YEARLY, Owned

NO_BODY: Any = object()

HIDDEN, AS_MISSING, OPENED, PUBLIC = "hidden", "as_missing", "opened", "public"
# Routes open to everyone that /openapi.json may list (/docs if served).
OPTIONAL_PUBLIC = {("GET", "/docs")}
# Reads first, what deletes or cancels last: a delete that wrongly
# succeeded would make the probes after it pass for the wrong reason.
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
DESTRUCTIVE = ("/cancel", "/prune")


@dataclass(frozen=True)
class Probe:
    method: str
    route: str  # the path as /openapi.json lists it
    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = NO_BODY
    headers: dict[str, str] = field(default_factory=dict)
    expect: str = HIDDEN
    taken: bool = False  # hidden: 409 (the id is taken) is right too
    same_body: bool = True  # as_missing: the body too (False: it makes something new)
    check: Callable[[Any], bool] | None = None  # opened: b's answer, parsed
    why: str = ""

    def url(self, swap: dict[str, str]) -> str:
        return self.route.format(**{k: swapped(v, swap) for k, v in self.path.items()})

    def content(self, swap: dict[str, str]) -> bytes | None:
        if self.body is NO_BODY:
            return None
        return swapped(json.dumps(self.body), swap).encode()

    def describe(self) -> str:
        parts = [self.method, self.url({})]
        if self.query:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.query.items()))
        if self.body is not NO_BODY:
            parts.append(json.dumps(self.body))
        if self.headers:
            parts.append(f"headers {self.headers}")
        return " ".join(parts)


def swapped(text: str, swap: dict[str, str]) -> str:
    for old, new in swap.items():
        text = text.replace(old, new)
    return text


def hidden(method: str, route: str, path: dict[str, str] | None = None, **kw: Any) -> Probe:
    return Probe(method, route, path or {}, expect=HIDDEN, **kw)


def as_missing(method: str, route: str, path: dict[str, str] | None = None, **kw: Any) -> Probe:
    return Probe(method, route, path or {}, expect=AS_MISSING, **kw)


def opened(method: str, route: str, path: dict[str, str] | None = None, **kw: Any) -> Probe:
    return Probe(method, route, path or {}, expect=OPENED, **kw)


def public(route: str) -> Probe:
    return Probe("GET", route, expect=PUBLIC)


def nothing(body: Any) -> bool:
    return body in ([], 0, None, {"items": []}, {"namespaces": []})


def no_runs(body: Any) -> bool:
    """The dashboard as b sees it before b ran anything (reads go first)."""
    return not any(body["live"].values()) and not any(body["ended"].values()) and not body["recent"]


def probes(o: Owned) -> list[Probe]:
    """What b sends, per route; at least one probe for every route."""
    t, bt, asst = o.thread, o.busy_thread, o.assistant
    on_t = {"thread_id": t}
    on_bt = {"thread_id": bt}
    on_b = {"thread_id": o.b_thread}
    done = {"thread_id": t, "run_id": o.run}
    pending = {"thread_id": bt, "run_id": o.pending_run}
    # a's run addressed on b's own thread: no such run there either.
    crossed = {"thread_id": o.b_thread, "run_id": o.run}
    of_a = {"assistant_id": asst}
    run = {"assistant_id": "whoami", "input": {}}
    with_a_assistant = {"assistant_id": asst, "input": {}}
    cron = {"assistant_id": "whoami", "schedule": YEARLY, "input": {}}
    by_owner = {"metadata": {"owner": o.user}}
    steps = [{"updates": [{"values": {"user": "b"}, "as_node": "whoami"}]}]

    table = [
        public("/ok"),
        public("/info"),
        public("/openapi.json"),
        public("/metrics"),
        public("/docs"),  # probed only if /openapi.json lists it
        # -- assistants
        hidden(
            "POST", "/assistants", body={"graph_id": "whoami", "assistant_id": asst}, taken=True
        ),
        hidden(
            "POST",
            "/assistants",
            body={"graph_id": "whoami", "assistant_id": asst, "if_exists": "do_nothing"},
            taken=True,
        ),
        opened("POST", "/assistants", body={"graph_id": "whoami", "name": "b's"}),
        opened("POST", "/assistants/search", body={"limit": 1000}),
        opened("POST", "/assistants/search", body={"graph_id": "whoami", "limit": 1000}),
        opened("POST", "/assistants/search", body=by_owner, check=nothing),
        opened("POST", "/assistants/search", body={"name": o.marker}, check=nothing),
        opened("POST", "/assistants/count", body={}),
        opened("POST", "/assistants/count", body=by_owner, check=nothing),
        hidden("GET", "/assistants/{assistant_id}", of_a),
        hidden("PATCH", "/assistants/{assistant_id}", of_a, body={"metadata": {"by": "b"}}),
        hidden("PATCH", "/assistants/{assistant_id}", of_a, body={"graph_id": "whoami"}),
        hidden("DELETE", "/assistants/{assistant_id}", of_a),
        hidden("DELETE", "/assistants/{assistant_id}", of_a, query={"delete_threads": "true"}),
        hidden("POST", "/assistants/{assistant_id}/versions", of_a, body={}),
        hidden("POST", "/assistants/{assistant_id}/latest", of_a, body={"version": 1}),
        hidden("GET", "/assistants/{assistant_id}/graph", of_a),
        hidden("GET", "/assistants/{assistant_id}/graph", of_a, query={"xray": "true"}),
        hidden("GET", "/assistants/{assistant_id}/schemas", of_a),
        hidden("GET", "/assistants/{assistant_id}/subgraphs", of_a),
        hidden(
            "GET",
            "/assistants/{assistant_id}/subgraphs/{namespace}",
            {**of_a, "namespace": "whoami"},
        ),
        # -- threads
        hidden("POST", "/threads", body={"thread_id": t}, taken=True),
        hidden("POST", "/threads", body={"thread_id": t, "if_exists": "do_nothing"}, taken=True),
        hidden(
            "POST",
            "/threads",
            body={
                "thread_id": t,
                "if_exists": "do_nothing",
                "metadata": {"graph_id": "whoami"},
                "supersteps": steps,
            },
            taken=True,
        ),
        opened("POST", "/threads", body={"metadata": {"by": "b"}}),
        opened("POST", "/threads/search", body={"limit": 1000}),
        opened("POST", "/threads/search", body=by_owner, check=nothing),
        opened("POST", "/threads/search", body={"values": {"user": o.user}}, check=nothing),
        opened("POST", "/threads/search", body={"status": "busy"}),
        as_missing("POST", "/threads/search", body={"ids": [t, bt]}),
        opened("POST", "/threads/count", body={}),
        opened("POST", "/threads/count", body=by_owner, check=nothing),
        opened("POST", "/threads/count", body={"values": {"user": o.user}}, check=nothing),
        as_missing("POST", "/threads/prune", body={"thread_ids": [t]}),
        as_missing(
            "POST", "/threads/prune", body={"thread_ids": [t, bt], "strategy": "keep_latest"}
        ),
        hidden("GET", "/threads/{thread_id}", on_t),
        hidden("GET", "/threads/{thread_id}", on_bt),
        hidden("PATCH", "/threads/{thread_id}", on_t, body={"metadata": {"by": "b"}}),
        hidden(
            "PATCH",
            "/threads/{thread_id}",
            on_t,
            body={"metadata": {"by": "b"}},
            headers={"Prefer": "return=minimal"},
        ),
        hidden("DELETE", "/threads/{thread_id}", on_t),
        hidden("DELETE", "/threads/{thread_id}", on_bt),
        hidden("POST", "/threads/{thread_id}/copy", on_t),
        # -- thread state
        hidden("GET", "/threads/{thread_id}/state", on_t),
        hidden("GET", "/threads/{thread_id}/state", on_t, query={"subgraphs": "true"}),
        hidden(
            "GET",
            "/threads/{thread_id}/state/{checkpoint_id}",
            {**on_t, "checkpoint_id": o.checkpoint},
        ),
        hidden(
            "POST",
            "/threads/{thread_id}/state/checkpoint",
            on_t,
            body={"checkpoint": {"checkpoint_id": o.checkpoint}},
        ),
        hidden(
            "POST",
            "/threads/{thread_id}/state",
            on_t,
            body={"values": {"user": "b"}, "as_node": "whoami"},
        ),
        hidden(
            "POST",
            "/threads/{thread_id}/state",
            on_t,
            body={"values": {"user": "b"}, "checkpoint_id": o.checkpoint},
        ),
        hidden("POST", "/threads/{thread_id}/history", on_t, body={}),
        hidden("POST", "/threads/{thread_id}/history", on_t, body={"before": o.checkpoint}),
        hidden("GET", "/threads/{thread_id}/history", on_t),
        hidden("GET", "/threads/{thread_id}/history", on_t, query={"limit": "100"}),
        # -- runs on a thread
        hidden("GET", "/threads/{thread_id}/runs", on_t),
        hidden("GET", "/threads/{thread_id}/runs", on_bt, query={"status": "pending"}),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}", done),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}", pending),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}", crossed),
        hidden("DELETE", "/threads/{thread_id}/runs/{run_id}", done),
        hidden("DELETE", "/threads/{thread_id}/runs/{run_id}", pending),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}/join", done),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}/join", pending),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}/join", crossed),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}/stream", done),
        hidden(
            "GET",
            "/threads/{thread_id}/runs/{run_id}/stream",
            done,
            headers={"Last-Event-ID": "0"},
            why="a replay of a's kept events",
        ),
        hidden("GET", "/threads/{thread_id}/runs/{run_id}/stream", pending),
        hidden("POST", "/threads/{thread_id}/runs/{run_id}/cancel", pending),
        hidden("POST", "/threads/{thread_id}/runs/{run_id}/cancel", pending, query={"wait": "1"}),
        hidden(
            "POST",
            "/threads/{thread_id}/runs/{run_id}/cancel",
            pending,
            query={"action": "rollback"},
        ),
        hidden("POST", "/threads/{thread_id}/runs/{run_id}/cancel", done),
        # -- stateless runs and batches
        hidden("POST", "/runs/batch", body=[{**run, "thread_id": t}]),
        hidden("POST", "/runs/batch", body=[{**run, "thread_id": t, "if_not_exists": "create"}]),
        hidden(
            "POST", "/runs/batch", body=[{**run, "thread_id": bt, "multitask_strategy": "rollback"}]
        ),
        hidden("POST", "/runs/batch", body=[with_a_assistant]),
        hidden("POST", "/runs/batch", body=[{**with_a_assistant, "thread_id": o.b_thread}]),
        opened("POST", "/runs/batch", body=[run]),
        as_missing("POST", "/runs/cancel", body={"run_ids": [o.pending_run]}),
        as_missing(
            "POST", "/runs/cancel", body={"run_ids": [o.pending_run]}, query={"action": "rollback"}
        ),
        as_missing("POST", "/runs/cancel", body={"thread_id": bt}),
        as_missing("POST", "/runs/cancel", body={"thread_id": bt, "status": "pending"}),
        opened("POST", "/runs/cancel", body={"status": "all"}, why="cancels b's runs only"),
        # -- crons
        hidden("POST", "/runs/crons", body={**cron, "assistant_id": asst}),
        opened("POST", "/runs/crons", body=cron),
        hidden("POST", "/threads/{thread_id}/runs/crons", on_t, body=cron),
        hidden(
            "POST", "/threads/{thread_id}/runs/crons", on_b, body={**cron, "assistant_id": asst}
        ),
        hidden(
            "PATCH", "/runs/crons/{cron_id}", {"cron_id": o.thread_cron}, body={"enabled": False}
        ),
        hidden(
            "PATCH", "/runs/crons/{cron_id}", {"cron_id": o.cron}, body={"schedule": "0 0 2 2 *"}
        ),
        hidden("DELETE", "/runs/crons/{cron_id}", {"cron_id": o.thread_cron}),
        hidden("DELETE", "/runs/crons/{cron_id}", {"cron_id": o.cron}),
        opened("POST", "/runs/crons/search", body={"limit": 1000}),
        opened("POST", "/runs/crons/search", body=by_owner, check=nothing),
        as_missing("POST", "/runs/crons/search", body={"thread_id": t}),
        as_missing("POST", "/runs/crons/search", body={"assistant_id": asst}),
        opened("POST", "/runs/crons/count", body={}),
        opened("POST", "/runs/crons/count", body=by_owner, check=nothing),
        as_missing("POST", "/runs/crons/count", body={"thread_id": t}),
        as_missing("POST", "/runs/crons/count", body={"assistant_id": asst}),
        # -- store: every namespace b names is under b's own (reads come
        # before b's writes, so b has nothing there yet)
        opened(
            "GET",
            "/store/items",
            query={"namespace": f"{o.user}.{o.namespace}", "key": "k"},
            check=nothing,
        ),
        opened("GET", "/store/items", query={"namespace": o.namespace, "key": "k"}, check=nothing),
        opened("POST", "/store/items/search", body={"namespace_prefix": []}, check=nothing),
        opened(
            "POST",
            "/store/items/search",
            body={"namespace_prefix": [o.user, o.namespace]},
            check=nothing,
        ),
        opened("POST", "/store/namespaces", body={}, check=nothing),
        opened("POST", "/store/namespaces", body={"prefix": [o.user]}, check=nothing),
        opened(
            "PUT",
            "/store/items",
            body={"namespace": [o.user, o.namespace], "key": "k", "value": {"by": "b"}},
        ),
        opened(
            "PUT",
            "/store/items",
            body={"namespace": [o.namespace], "key": "k", "value": {"by": "b"}},
        ),
        opened("DELETE", "/store/items", body={"namespace": [o.user, o.namespace], "key": "k"}),
        opened("DELETE", "/store/items", body={"namespace": [o.namespace], "key": "k"}),
        # -- dashboard: b's runs only, in every list and count
        opened("GET", "/dashboard/api/overview", check=no_runs),
        opened("GET", "/dashboard/api/overview", query={"window": "24h"}, check=no_runs),
        hidden("GET", "/dashboard/api/runs/{run_id}", {"run_id": o.run}),
        hidden("GET", "/dashboard/api/runs/{run_id}", {"run_id": o.pending_run}),
    ]
    # a's checkpoint named on b's own thread (or with a's thread inside the
    # checkpoint): only b's thread's checkpoints are looked at.
    a_checkpoint = {"thread_id": t, "checkpoint_id": o.checkpoint}
    table += [
        as_missing(
            "GET",
            "/threads/{thread_id}/state/{checkpoint_id}",
            {**on_b, "checkpoint_id": o.checkpoint},
        ),
        as_missing(
            "POST", "/threads/{thread_id}/state/checkpoint", on_b, body={"checkpoint": a_checkpoint}
        ),
        as_missing(
            "POST",
            "/threads/{thread_id}/history",
            on_b,
            body={"before": {"configurable": a_checkpoint}},
        ),
        as_missing("POST", "/threads/{thread_id}/history", on_b, body={"checkpoint": a_checkpoint}),
        as_missing(
            "POST",
            "/threads/{thread_id}/state",
            on_b,
            body={"values": {"user": "b"}, "checkpoint": a_checkpoint},
            same_body=False,
        ),
        as_missing(
            "POST",
            "/threads/{thread_id}/runs/stream",
            on_b,
            body={**run, "checkpoint_id": o.checkpoint},
            same_body=False,
            why="the first values event would be a's state",
        ),
        as_missing(
            "POST",
            "/threads/{thread_id}/runs/stream",
            on_b,
            body={**run, "checkpoint": a_checkpoint},
            same_body=False,
        ),
        as_missing(
            "POST", "/runs/stream", body={**run, "checkpoint": a_checkpoint}, same_body=False
        ),
    ]
    # Runs on a's threads (plain, if_not_exists=create, a multitask strategy
    # that would cancel a's pending run, a resume), and b's or stateless
    # runs of a's assistant, for each way of creating a run.
    for route in ("/threads/{thread_id}/runs", "/threads/{thread_id}/runs/wait", "/threads/{thread_id}/runs/stream"):  # fmt: skip
        table += [
            hidden("POST", route, on_t, body=run),
            hidden("POST", route, on_t, body={**run, "if_not_exists": "create"}),
            hidden("POST", route, on_t, body={"assistant_id": "whoami", "command": {"resume": 1}}),
            hidden("POST", route, on_bt, body={**run, "multitask_strategy": "rollback"}),
            hidden("POST", route, on_bt, body={**run, "multitask_strategy": "interrupt"}),
            hidden("POST", route, on_bt, body={**run, "multitask_strategy": "reject"}),
            hidden("POST", route, on_b, body=with_a_assistant),
        ]
    for route in ("/runs", "/runs/wait", "/runs/stream"):
        table += [
            hidden("POST", route, body=with_a_assistant),
            opened("POST", route, body=run),
        ]
    return sorted(table, key=order)


def order(p: Probe) -> int:
    return METHOD_ORDER["DELETE"] if p.route.endswith(DESTRUCTIVE) else METHOD_ORDER[p.method]

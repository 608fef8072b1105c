"""Upgrading a database that holds data: built at the first revision, filled
through each revision's own schema as that revision makes a kind of data
possible (runs and threads in every status, checkpoints, events, crons,
store items, assistant versions), upgraded one revision at a time to head,
read back there as pgqueue and langgraph read it, then downgraded to base.

Every step must carry every row over with the same values in the columns it
had; the one change allowed is 0008's keys in thread metadata, checked at head."""

from __future__ import annotations

import json
import operator
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict
from uuid import UUID

import psycopg
from alembic.script import ScriptDirectory
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.postgres import PostgresStore
from psycopg import sql
from psycopg.types.json import Jsonb

from pgqueue.db import migrate
from tests.db.test_migrations import FUNCTIONS, OBJECTS

T_IDLE, T_BUSY, T_INT, T_ERR, T_NONE, T_CANCEL, T_VALUES = (UUID(int=100 + i) for i in range(7))
A1, A2, A3 = UUID(int=301), UUID(int=302), UUID(int=303)
R_DONE, R_OLD, R_RUNNING, R_PENDING, R_INTERRUPTED = (UUID(int=200 + i) for i in range(5))
R_ERROR, R_TIMEOUT, R_STATELESS, R_CANCELLING, R_CANCELLED = (UUID(int=205 + i) for i in range(5))
C1, C2, C3 = UUID(int=401), UUID(int=402), UUID(int=403)
FUTURE, LATER = datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 6, 1, tzinfo=UTC)
BOOM = {"error": "ValueError", "message": "boom"}
M1, M2, M3 = ({"configurable": {"model": m}} for m in ("m1", "m2", "m3"))

# Primary keys of the tables the fills write: their rows are found by them at head.
PK = {
    "assistants": ("assistant_id",),
    "threads": ("thread_id",),
    "workers": ("worker_id",),
    "runs": ("run_id",),
    "run_events": ("run_id", "seq"),
    "crons": ("cron_id",),
    "store": ("prefix", "key"),
}


class Filled:
    """The rows written, as they must read at head: table -> key -> columns."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.conn: psycopg.Connection[Any]

    def insert(self, table: str, **row: Any) -> None:
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join([sql.Placeholder()] * len(row)),
        )
        values = [Jsonb(v) if isinstance(v, dict | list) else v for v in row.values()]
        self.conn.execute(query, values)
        self.rows.setdefault(table, {})[tuple(row[c] for c in PK[table])] = row

    def run(self, run_id: UUID, thread: UUID | None, assistant: UUID | None, status: str,
            graph: str | None, **more: Any) -> None:  # fmt: skip
        # As pgqueue's submit writes a run: its graph in kwargs (none for a
        # plain queue handler's run).
        kwargs = {"input": {"n": run_id.int}, **({"graph_id": graph} if graph else {})}
        self.insert("runs", run_id=run_id, thread_id=thread, assistant_id=assistant,
                    status=status, kwargs=kwargs, metadata={"n": run_id.int}, **more)  # fmt: skip

    def count(self, table: str) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        return int(self.conn.execute(query).fetchall()[0][0])

    def statuses(self, table: str) -> Counter[str]:
        return Counter(row["status"] for row in self.rows[table].values())

    def allowed(self, constraint: str) -> set[str]:
        """The values a status CHECK constraint allows, from the catalog."""
        [(definition,)] = self.conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s", (constraint,)
        ).fetchall()
        return set(re.findall(r"'(\w+)'::text", definition))


def fill_0001(url: str, f: Filled) -> None:
    # A1 was updated once before versions were kept: 0007 must record its version 2.
    f.insert("assistants", assistant_id=A1, graph_id="agent", name="Agent", description="the first",
             config=M1, context={"tone": "dry"}, metadata={"owner": "ana"}, version=2)  # fmt: skip
    f.insert("assistants", assistant_id=A2, graph_id="other", name="Other", description=None,
             config={}, context={}, metadata={}, version=1)  # fmt: skip
    f.insert("workers", worker_id="w-1", host="host-1", pid=42, concurrency=4)
    for thread_id, status, extra in (
        (T_IDLE, "idle", {"metadata": {"owner": "ana"}, "config": {"configurable": {"k": 1}}}),
        (T_BUSY, "busy", {"metadata": {"graph_id": "pinned"}}),  # its own graph_id stays
        (T_INT, "interrupted", {"interrupts": {"t1": [{"value": "ok?", "id": "i1"}]}}),
        (T_ERR, "error", {"error": BOOM}),
        (T_NONE, "idle", {"metadata": {"lonely": True}}),  # no run: 0008 leaves it alone
    ):
        f.insert("threads", thread_id=thread_id, status=status, **{"metadata": {}, **extra})
    f.run(R_DONE, T_IDLE, A1, "success", "agent", output={"answer": 42}, attempt=1)
    f.run(R_OLD, T_BUSY, A2, "success", "other", output={}, attempt=1)
    f.run(R_RUNNING, T_BUSY, A1, "running", "agent", attempt=1, worker_id="w-1")
    f.run(R_PENDING, T_BUSY, A1, "pending", "agent", priority=5, max_attempts=5,
          multitask_strategy="enqueue", not_before=FUTURE)  # fmt: skip
    # A graph's interrupt, as the executor ended such runs until after 0010
    # (0013 gives it the meaning it has since: AT_HEAD).
    f.run(R_INTERRUPTED, T_INT, A1, "interrupted", "agent", attempt=1,
          output={"items": ["x", "a"], "__interrupt__": [{"value": "ok?", "id": "i1"}]})  # fmt: skip
    f.run(R_ERROR, T_ERR, A2, "error", "other", error=BOOM, attempt=3, releases=1)
    f.run(R_TIMEOUT, T_ERR, A2, "timeout", None, error={"error": "TimeoutError"})
    f.run(R_STATELESS, None, None, "success", "agent", output={"ok": True})
    # Every status this revision allows, on runs and on threads.
    assert set(f.statuses("runs")) == f.allowed("runs_status_check")
    assert set(f.statuses("threads")) == f.allowed("threads_status_check")


class State(TypedDict):
    items: Annotated[list[str], operator.add]


def _graph(saver: PostgresSaver) -> Any:
    graph = StateGraph(State)
    graph.add_node("a", lambda _: {"items": ["a"]})
    graph.add_node("b", lambda _: {"items": ["b"]})
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_edge("b", END)
    return graph.compile(checkpointer=saver, interrupt_before=["b"])


# As the executor configures a run: pgqueue finds a run's checkpoints by run_id.
CONFIG: RunnableConfig = {
    "configurable": {"thread_id": str(T_INT)},
    "metadata": {"run_id": str(R_INTERRUPTED), "run_attempt": 1},
}


def fill_0002(url: str, f: Filled) -> None:
    # The interrupted thread's checkpoints, written by langgraph's own saver
    # (no pgqueue.lease set: the fence trigger lets its statements through).
    with PostgresSaver.from_conn_string(url) as saver:
        _graph(saver).invoke({"items": ["x"]}, CONFIG)
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        assert f.count(table) > 0, f"the graph wrote no {table}"


def fill_0003(url: str, f: Filled) -> None:
    # A cancel on its way to a running run, and a pending run cancelled.
    f.insert("threads", thread_id=T_CANCEL, status="busy", metadata={})
    f.run(R_CANCELLING, T_CANCEL, None, "running", "agent", attempt=2, worker_id="w-1",
          cancel_action="rollback")  # fmt: skip
    f.run(R_CANCELLED, T_IDLE, A2, "interrupted", "agent", cancel_action="interrupt")


# Each run's stream: (attempt, event, data) for seq 1, 2, ...; seq runs on
# across attempts (R_RUNNING's third event is its second attempt's).
EVENTS = {
    R_INTERRUPTED: [(1, "metadata", {"run_id": str(R_INTERRUPTED)}), (1, "values", {"items": ["x"]}),
                    (1, "values", {"items": ["x", "a"]}), (1, "end", {})],
    R_RUNNING: [(1, "metadata", {"attempt": 1}), (1, "updates", {"a": {}}),
                (2, "metadata", {"attempt": 2})],
}  # fmt: skip


def fill_0004(url: str, f: Filled) -> None:
    for run_id, events in EVENTS.items():
        for seq, (attempt, event, data) in enumerate(events, start=1):
            f.insert("run_events", run_id=run_id, seq=seq, attempt=attempt, event=event, data=data)


def fill_0005(url: str, f: Filled) -> None:
    f.insert("threads", thread_id=T_VALUES, status="idle", metadata={"graph_id": "agent"},
             state_values={"messages": [{"type": "human", "content": "hi"}]})  # fmt: skip
    f.insert("crons", cron_id=C1, assistant_id=A1, thread_id=T_IDLE, schedule="*/5 * * * *",
             payload={"input": {"q": 1}, "enabled": True}, metadata={"owner": "ana"},
             user_id="ana", end_time=LATER, next_run_at=FUTURE)  # fmt: skip
    f.insert("crons", cron_id=C2, assistant_id=A2, thread_id=None, schedule="0 9 * * 1",
             payload={"enabled": False}, metadata={}, user_id=None, end_time=None,
             next_run_at=FUTURE)  # fmt: skip
    f.insert("store", prefix="users.ana", key="prefs", value={"theme": "dark"})
    f.insert("store", prefix="users.ana", key="notes", value={"n": [1, 2]}, expires_at=LATER,
             ttl_minutes=60)  # fmt: skip
    f.insert("store", prefix="docs", key="readme", value={"text": "hi"})


# pgqueue's update_assistant and set_latest_assistant_version (filters left out).
UPDATE = """UPDATE assistants SET config = %s, metadata = metadata || %s,
    version = last_version + 1, last_version = last_version + 1, updated_at = now()
    WHERE assistant_id = %s"""
SET_LATEST = """UPDATE assistants a SET graph_id = v.graph_id, name = v.name,
    description = v.description, config = v.config, context = v.context,
    metadata = v.metadata, version = v.version, updated_at = now()
    FROM assistant_versions v
    WHERE a.assistant_id = %s AND v.assistant_id = a.assistant_id AND v.version = %s"""


def fill_0007(url: str, f: Filled) -> None:
    f.conn.execute(UPDATE, (Jsonb(M2), Jsonb({"rev": 3}), A1))
    f.rows["assistants"][(A1,)].update(
        config=M2, metadata={"owner": "ana", "rev": 3}, version=3, last_version=3
    )
    # A3: made, updated, then back to its first version.
    f.insert("assistants", assistant_id=A3, graph_id="agent", name="Third", description=None,
             config=M1, context={}, metadata={})  # fmt: skip
    f.conn.execute(UPDATE, (Jsonb(M3), Jsonb({}), A3))
    f.conn.execute(SET_LATEST, (A3, 1))
    f.rows["assistants"][(A3,)].update(version=1, last_version=2)


def fill_0009(url: str, f: Filled) -> None:
    f.insert("crons", cron_id=C3, assistant_id=A1, thread_id=None, schedule="@daily", payload={},
             metadata={"owner": "bo"}, user_id="bo", next_run_at=FUTURE,
             auth_user={"identity": "bo", "permissions": ["read"]})  # fmt: skip


FILLS: dict[str, Callable[[str, Filled], None]] = {
    "0001_queue_core": fill_0001,
    "0002_checkpoints": fill_0002,
    "0003_cancel": fill_0003,
    "0004_run_events": fill_0004,
    "0005_http_api": fill_0005,
    "0007_assistant_versions": fill_0007,
    "0009_cron_user": fill_0009,
}
# What a revision may change in the rows it finds.
# Rows whose columns read otherwise at head than as written: 0013 makes a
# run a graph's interrupt ended (no cancel asked) a success, as it is since.
AT_HEAD = {("runs", (R_INTERRUPTED,)): {"status": "success"}}
CHANGES = {
    "0008_thread_graph": {("threads", "metadata")},
    "0013_graph_interrupts_succeed": {("runs", "status")},
}
# 0008: each thread's graph and assistant from its newest run (by seq), keys
# it had kept; a run with no graph or no assistant adds no such key.
METADATA = {
    T_IDLE: {"owner": "ana", "graph_id": "agent", "assistant_id": str(A2)},  # R_CANCELLED
    T_BUSY: {"graph_id": "pinned", "assistant_id": str(A1)},  # R_PENDING
    T_INT: {"graph_id": "agent", "assistant_id": str(A1)},
    T_ERR: {"assistant_id": str(A2)},  # R_TIMEOUT has no graph; R_ERROR's is older
    T_NONE: {"lonely": True},
    T_CANCEL: {"graph_id": "agent"},  # R_CANCELLING has no assistant
    T_VALUES: {"graph_id": "agent"},  # made at 0005, no run
}
# (assistant, version) -> graph_id, name, description, config, context, metadata
VERSIONS = {
    (A1, 2): ("agent", "Agent", "the first", M1, {"tone": "dry"}, {"owner": "ana"}),  # 0007's
    (A1, 3): ("agent", "Agent", "the first", M2, {"tone": "dry"}, {"owner": "ana", "rev": 3}),
    (A2, 1): ("other", "Other", None, {}, {}, {}),
    (A3, 1): ("agent", "Third", None, M1, {}, {}),
    (A3, 2): ("agent", "Third", None, M3, {}, {}),
}

Snapshot = dict[str, dict[str, dict[str, Any]]]

TABLES = """
SELECT c.relname::text, array(
    SELECT a.attname::text FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = c.oid AND i.indisprimary ORDER BY a.attnum)
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
    AND c.relname NOT LIKE 'alembic_version%'
"""


def _snapshot(url: str) -> Snapshot:
    """Every row of every table, as JSON, keyed by its primary key."""
    out: Snapshot = {}
    with psycopg.connect(url) as conn:
        for table, pk in conn.execute(TABLES).fetchall():
            query = sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(table))
            rows = [row for (row,) in conn.execute(query).fetchall()]
            out[table] = {json.dumps([r[c] for c in pk] if pk else r): r for r in rows}
    return out


def _carried_over(
    before: Snapshot, after: Snapshot, step: str, changed: set[tuple[str, str]], up: bool
) -> None:
    """Each row of before is in after, with the same values in the columns
    both have. Up, no table or column may go; down, that is the point."""
    for table, rows in before.items():
        if table not in after:
            assert not up, f"{step} dropped table {table} and its {len(rows)} rows"
            continue
        assert after[table].keys() == rows.keys(), f"{step} lost or added rows of {table}"
        for key, row in rows.items():
            for column, value in row.items():
                if column not in after[table][key]:
                    assert not up, f"{step} dropped {table}.{column}"
                elif (table, column) not in changed:
                    assert after[table][key][column] == value, f"{step}: {table}.{column} {key}"


def _check_head(url: str, f: Filled) -> None:
    for (table, key), columns in AT_HEAD.items():
        f.rows[table][key].update(columns)
    for table, rows in f.rows.items():
        assert f.count(table) == len(rows), table
        for key, row in rows.items():
            columns = [c for c in row if (table, c) != ("threads", "metadata")]
            query = sql.SQL("SELECT {} FROM {} WHERE ({}) = ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, PK[table])),
                sql.SQL(", ").join([sql.Placeholder()] * len(key)),
            )
            got = f.conn.execute(query, key).fetchall()
            assert got == [tuple(row[c] for c in columns)], (table, key)
    # Statuses: the same sets allowed as at 0001, and pgqueue's view counts them.
    assert set(f.statuses("runs")) == f.allowed("runs_status_check")
    assert set(f.statuses("threads")) == f.allowed("threads_status_check")
    depth = f.conn.execute("SELECT status, runs FROM pgqueue_queue_depth").fetchall()
    assert dict(depth) == f.statuses("runs")
    assert dict(f.conn.execute("SELECT thread_id, metadata FROM threads").fetchall()) == METADATA
    for run_id, events in EVENTS.items():
        got = f.conn.execute(
            "SELECT seq, attempt, event, data FROM run_events WHERE run_id = %s ORDER BY seq",
            (run_id,),
        ).fetchall()
        assert got == [(seq, *event) for seq, event in enumerate(events, start=1)]
    versions = f.conn.execute(
        "SELECT assistant_id, version, graph_id, name, description, config, context, metadata "
        "FROM assistant_versions"
    ).fetchall()
    assert {(a, v): tuple(rest) for a, v, *rest in versions} == VERSIONS
    current = f.conn.execute("SELECT assistant_id, version, last_version FROM assistants")
    assert {a: (v, last) for a, v, last in current} == {A1: (3, 3), A2: (1, 1), A3: (1, 2)}
    # 0010's filters find the rows made before it by their metadata.
    ana = Jsonb({"owner": "ana"})
    owned = f.conn.execute(
        "SELECT thread_id FROM threads WHERE pgqueue_auth_match(metadata, %s) UNION ALL "
        "SELECT cron_id FROM crons WHERE pgqueue_auth_match_indexed(metadata, %s)",
        (ana, ana),
    ).fetchall()
    assert sorted(owned) == [(T_IDLE,), (C1,)]
    # The checkpoints read through langgraph's saver, and the run resumes from them.
    with PostgresSaver.from_conn_string(url) as saver:
        graph = _graph(saver)
        state = graph.get_state(CONFIG)
        assert (state.values, state.next) == ({"items": ["x", "a"]}, ("b",))
        assert state.metadata["run_id"] == str(R_INTERRUPTED)
        assert graph.invoke(None, CONFIG) == {"items": ["x", "a", "b"]}
    with PostgresStore.from_conn_string(url) as store:
        for (prefix, key), row in f.rows["store"].items():
            item = store.get(tuple(prefix.split(".")), key, refresh_ttl=False)
            assert item is not None and item.value == row["value"], (prefix, key)


def test_upgrade_to_head_keeps_the_data_of_every_revision(empty_database_url: str) -> None:
    url = empty_database_url
    scripts = ScriptDirectory.from_config(migrate.alembic_config(url))
    revisions = [script.revision for script in reversed(list(scripts.walk_revisions()))]
    assert set(FILLS) | set(CHANGES) <= set(revisions)
    filled = Filled()
    before: Snapshot | None = None
    for revision in revisions:  # base to head, one at a time
        migrate.upgrade(url, revision)
        after = _snapshot(url)
        if before is not None:
            changed = CHANGES.get(revision, set())
            _carried_over(before, after, f"upgrade to {revision}", changed, up=True)
        if revision in FILLS:
            with psycopg.connect(url, autocommit=True) as filled.conn:
                FILLS[revision](url, filled)
            after = _snapshot(url)
        before = after
    assert migrate.current_revision(url) == migrate.head_revision()
    with psycopg.connect(url, autocommit=True) as filled.conn:
        _check_head(url, filled)
    # Down one revision at a time: what a step keeps, it keeps unchanged.
    before = _snapshot(url)
    while migrate.current_revision(url) is not None:
        migrate.downgrade(url, "-1")
        after = _snapshot(url)
        step = f"downgrade to {migrate.current_revision(url)}"
        _carried_over(before, after, step, set(), up=False)
        before = after
    with psycopg.connect(url) as conn:
        for query in (OBJECTS, FUNCTIONS):
            assert conn.execute(query).fetchall() == [(0,)], query

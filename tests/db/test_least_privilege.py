"""`pgqueue server` and `pgqueue worker` run as a role with DML only.

The owner (the tests' admin role) migrates a database of its own and
applies migrations/grants.sql for a new role, the block the README quotes;
the HTTP server and a worker then run everything a client does (runs,
streams, thread state, the store, crons) as that role. The role is shown
to be least-privileged too: no DDL, and so no `pgqueue migrate`.

The grants go in one revision before head, so the migration after them
(0007, which creates a table and a function) is covered only by grants.sql's
ALTER DEFAULT PRIVILEGES: what happens when pgqueue is upgraded later.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from langgraph_sdk import get_client

from pgqueue.db import migrate
from tests.support import dbs
from tests.support.procs import FAST, REPO, run_cli, worker_process
from tests.support.server import server_process
from tests.support.waiting import eventually

GRANTS = REPO / "migrations" / "grants.sql"
README = REPO / "README.md"
ROLE_IN_FILE = "pgqueue_app"
# The last revision before one that creates a table (0007_assistant_versions).
BEFORE_NEW_TABLE = "0006_lease_20s"
DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Table privileges the role must not hold: TRUNCATE bypasses row locks and
# triggers (the lease fence), TRIGGER and REFERENCES are schema changes.
NOT_DML = ("TRUNCATE", "TRIGGER", "REFERENCES")
YEARLY = "0 0 1 1 *"  # never due on its own while the test runs


@dataclass(frozen=True)
class LeastPrivileged:
    owner_url: str  # the owner's connection to the test database
    role_url: str  # the same database as the DML-only role
    role: str
    # `pgqueue migrate` as the role while a migration was pending.
    migrate_as_role: subprocess.CompletedProcess[str]


def statements(sql: str) -> list[str]:
    """``sql``'s lines without comments and blank lines: what must agree
    between grants.sql and the README's copy (comments may differ)."""
    lines = (line.split("--", 1)[0].rstrip() for line in sql.splitlines())
    return [line for line in lines if line.strip()]


def grants_for(role: str) -> str:
    return re.sub(rf"\b{ROLE_IN_FILE}\b", role, GRANTS.read_text())


def as_role(url: str, role: str, password: str) -> str:
    """``url`` with its user and password replaced; host, port, database
    and query (the embedded server's ``?host=`` socket) kept."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(role)}:{quote(password, safe='')}@{host}"))


@pytest.fixture(scope="module")
def least(admin_url: str) -> Iterator[LeastPrivileged]:
    name = dbs.create_database(admin_url, prefix="pgq_lp")
    owner_url = dbs.with_database(admin_url, name)
    # Roles are cluster-wide: a random name keeps parallel sessions apart,
    # and the finally below drops it whatever happened.
    role = f"pgqueue_app_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    try:
        migrate.upgrade(owner_url, BEFORE_NEW_TABLE)
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
            conn.execute(grants_for(role))
        role_url = as_role(owner_url, role, password)
        tried = run_cli(role_url, "migrate")
        # What an upgrade looks like: the owner migrates, grants.sql is not
        # run again.
        migrate.upgrade(owner_url)
        yield LeastPrivileged(owner_url, role_url, role, tried)
    finally:
        # The database first: it holds the role's default privileges, which
        # would otherwise keep DROP ROLE from succeeding.
        dbs.drop_database(admin_url, name)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
async def owner(least: LeastPrivileged) -> AsyncIterator[asyncpg.Pool]:
    """The owner's pool: to check what the role's processes wrote."""
    pool = await asyncpg.create_pool(least.owner_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


def test_the_readme_quotes_grants_sql() -> None:
    readme = README.read_text()
    assert "migrations/grants.sql" in readme
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.DOTALL)
    assert statements(GRANTS.read_text()) in [statements(b) for b in blocks], (
        "README.md's least-privilege block and migrations/grants.sql differ"
    )


def test_the_role_holds_dml_only_on_every_table(least: LeastPrivileged) -> None:
    with psycopg.connect(least.owner_url) as conn:
        relations = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p') ORDER BY 1"
            )
        ]
        # assistant_versions was made after grants.sql ran (see module doc).
        assert {"alembic_version", "runs", "store", "assistant_versions"} <= set(relations)
        for privilege in (*DML, *NOT_DML):
            held = {
                rel
                for (rel,) in conn.execute(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p')"
                    " AND has_table_privilege(%s, c.oid, %s)",
                    (least.role, privilege),
                )
            }
            expected = set(relations) if privilege in DML else set()
            if privilege != "SELECT":
                # Read-only: the revision moves only by the owner's migrate.
                expected.discard("alembic_version")
            assert held == expected, privilege
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, "
            "has_schema_privilege(rolname, 'public', 'CREATE') FROM pg_roles WHERE rolname = %s",
            (least.role,),
        ).fetchone()
        assert attributes == (False, False, False, False, False)


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE x (id int)",
        "DROP TABLE runs",
        "TRUNCATE runs",
        "ALTER TABLE runs ADD COLUMN x int",
        "CREATE INDEX x ON runs (status)",
        "DROP FUNCTION pgqueue_sweep(interval)",
        "UPDATE alembic_version SET version_num = 'x'",
    ],
)
def test_the_role_cannot_change_the_schema_or_its_revision(
    least: LeastPrivileged, ddl: str
) -> None:
    with psycopg.connect(least.role_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (least.role,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(ddl)


def test_migrate_as_the_role_fails_and_changes_nothing(least: LeastPrivileged) -> None:
    tried = least.migrate_as_role
    assert tried.returncode != 0
    assert "permission denied" in tried.stderr, tried.stderr
    # The failed migration rolled back whole: the owner's upgrade after it
    # found the schema at BEFORE_NEW_TABLE and went on from there.
    assert migrate.current_revision(least.owner_url) == migrate.head_revision()


def test_migrate_as_the_role_says_why_without_a_traceback(least: LeastPrivileged) -> None:
    assert "Traceback" not in least.migrate_as_role.stderr
    assert "pgqueue: the database refused: permission denied" in least.migrate_as_role.stderr


async def test_server_and_worker_run_everything_as_the_role(
    least: LeastPrivileged, owner: asyncpg.Pool
) -> None:
    with (
        server_process(least.role_url, command="server") as server,
        worker_process(least.role_url, "graphs", *FAST) as worker,
    ):
        client = get_client(url=server.url)
        try:
            await exercise(client, owner)
        finally:
            await client.http.client.aclose()
        # The sweeper, once, as the role (the worker's loop runs it too).
        swept = run_cli(least.role_url, "sweep")
        assert swept.returncode == 0, swept.stderr
        # Maintenance loops log their failures and go on: a refused
        # statement there shows up only in the logs.
        for name, log in (("server", server.log()), ("worker", worker.log())):
            assert "permission denied" not in log, f"{name} log:\n{log}"


async def exercise(client: Any, owner: asyncpg.Pool) -> None:
    """What a client does, through tables that the queue, the checkpointer,
    the store and the scheduler each write."""
    # A background run: queue, worker claim, checkpoints, final status.
    thread_id = (await client.threads.create())["thread_id"]
    run = await client.runs.create(thread_id, "echo", input={"count": 1})
    assert await client.runs.join(thread_id, run["run_id"]) == {"count": 2}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"

    # A stream: run_events and their NOTIFY.
    parts = [
        part
        async for part in client.runs.stream(
            thread_id, "echo", input={"count": 5}, stream_mode="values"
        )
    ]
    assert [p.data for p in parts if p.event == "values"][-1] == {"count": 6}

    # Thread state: read from the checkpoints, and a checkpoint the server writes.
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"count": 6} and state["checkpoint"]["checkpoint_id"]
    await client.threads.update_state(thread_id, {"count": 10})
    assert (await client.threads.get_state(thread_id))["values"] == {"count": 10}
    assert len(await client.threads.get_history(thread_id)) >= 2

    # The store.
    await client.store.put_item(["least", "privilege"], "k", {"v": 1})
    assert (await client.store.get_item(["least", "privilege"], "k"))["value"] == {"v": 1}
    found = await client.store.search_items(["least"])
    assert [i["key"] for i in found["items"]] == ["k"]
    await client.store.delete_item(["least", "privilege"], "k")
    assert await client.store.get_item(["least", "privilege"], "k") is None

    # A cron, fired by the server's scheduler once made due.
    cron = await client.crons.create(
        "echo", schedule=YEARLY, input={"count": 41}, on_run_completed="keep"
    )
    await owner.execute(
        "UPDATE crons SET next_run_at = now() - interval '1 minute' WHERE cron_id = $1",
        uuid.UUID(cron["cron_id"]),
    )

    async def cron_run_done() -> asyncpg.Record | None:
        return await owner.fetchrow(
            "SELECT output FROM runs WHERE metadata->>'cron_id' = $1 AND status = 'success'",
            cron["cron_id"],
        )

    fired = await eventually(cron_run_done, timeout=30, what="the cron's run to succeed")
    assert json.loads(fired["output"]) == {"count": 42}
    await client.crons.delete(cron["cron_id"])

    # Deleting a thread deletes its runs, events and checkpoints.
    await client.threads.delete(thread_id)
    left = await owner.fetchval(
        "SELECT count(*) FROM checkpoints WHERE thread_id = $1", str(thread_id)
    )
    assert left == 0

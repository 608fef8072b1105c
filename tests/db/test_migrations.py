"""Alembic: upgrade and downgrade both ways, by `alembic` from the checkout
and by `pgqueue migrate` from an installed (non-editable) package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pgqueue.db import migrate
from tests.support.procs import run_cli

REPO = Path(__file__).resolve().parents[2]

OBJECTS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'
"""
FUNCTIONS = "SELECT count(*) FROM pg_proc WHERE proname LIKE 'pgqueue%'"


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    alembic = Path(sys.executable).with_name("alembic")
    return subprocess.run(
        [str(alembic), *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def test_alembic_upgrade_head_and_downgrade_base(empty_database_url: str) -> None:
    _alembic(empty_database_url, "upgrade", "head")
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    assert _count(empty_database_url, OBJECTS) > 10
    assert _count(empty_database_url, FUNCTIONS) >= 4
    _alembic(empty_database_url, "downgrade", "base")
    assert migrate.current_revision(empty_database_url) is None
    assert _count(empty_database_url, OBJECTS) == 0
    assert _count(empty_database_url, FUNCTIONS) == 0
    # And up again: downgrade left nothing behind that blocks a re-run.
    _alembic(empty_database_url, "upgrade", "head")
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()


# Everything a migration can create or change in the public schema, as
# comparable rows: relations and their kinds, columns with types, defaults
# and nullability, constraints, indexes, triggers, functions, types.
SCHEMA = """
SELECT 'rel', c.relname || ':' || c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname NOT LIKE 'alembic_version%'
UNION ALL
SELECT 'col', c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
    || ':' || a.attnotnull::text || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
    AND c.relname NOT LIKE 'alembic_version%'
UNION ALL
SELECT 'con', conrelid::regclass::text || ':' || conname || ':' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    AND conrelid::regclass::text NOT LIKE 'alembic_version%'
UNION ALL
SELECT 'idx', indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename NOT LIKE 'alembic_version%'
UNION ALL
SELECT 'trg', tgrelid::regclass::text || ':' || pg_get_triggerdef(oid)
FROM pg_trigger WHERE NOT tgisinternal
UNION ALL
SELECT 'fn', p.oid::regprocedure::text || ':' || md5(pg_get_functiondef(p.oid))
FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
UNION ALL
SELECT 'type', t.typname || ':' || t.typtype::text
FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c')
    AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
"""


def _schema(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return sorted((kind, what) for kind, what in conn.execute(SCHEMA).fetchall())


def test_every_revision_downgrades_and_upgrades_step_by_step(empty_database_url: str) -> None:
    """Up one revision at a time to head, noting the schema at each; then
    down one at a time to base: each downgrade must leave exactly the schema
    its revision had on the way up, and base must leave nothing behind."""
    url = empty_database_url
    assert migrate.current_revision(url) is None
    on_the_way_up: list[tuple[str | None, list[tuple[str, str]]]] = [(None, _schema(url))]
    assert on_the_way_up[0][1] == []
    while migrate.current_revision(url) != migrate.head_revision():
        migrate.upgrade(url, "+1")
        on_the_way_up.append((migrate.current_revision(url), _schema(url)))
    revisions = [revision for revision, _ in on_the_way_up]
    assert len(revisions) == len(set(revisions)) > 2  # each step moved on
    assert migrate.current_revision(url) == migrate.head_revision()
    for revision, schema in reversed(on_the_way_up[:-1]):
        migrate.downgrade(url, "-1")
        assert migrate.current_revision(url) == revision
        assert _schema(url) == schema, f"downgrading to {revision} left a different schema"
    assert _count(url, OBJECTS) == 0 and _count(url, FUNCTIONS) == 0
    # And up again in one go: the same schema as step by step.
    migrate.upgrade(url)
    assert _schema(url) == on_the_way_up[-1][1]


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", *args], check=True, capture_output=True, timeout=300
    )


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pgqueue built as a wheel and installed (not editable) into a directory."""
    root = tmp_path_factory.mktemp("installed")
    # setuptools reuses ./build and never removes what it holds: modules
    # since moved or deleted would ship in the wheel.
    shutil.rmtree(REPO / "build", ignore_errors=True)
    wheels = root / "wheels"
    target = root / "site"
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO))
    [wheel] = wheels.glob("pgqueue-*.whl")
    _pip("install", "--no-deps", "-q", "--target", str(target), str(wheel))
    return target


def test_pgqueue_migrate_from_an_installed_package(
    installed_package: Path, empty_database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": empty_database_url, "PYTHONPATH": str(installed_package)}
    where = subprocess.run(
        [sys.executable, "-c", "import pgqueue.db.migrate as m; print(m.migrations_dir())"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed_package)), where  # not the checkout's
    script = installed_package / "bin" / "pgqueue"
    result = subprocess.run(
        [sys.executable, str(script), "migrate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    # python -m pgqueue works too (and is idempotent).
    result = run_cli(
        empty_database_url, "migrate", cwd=str(tmp_path), PYTHONPATH=str(installed_package)
    )
    assert result.returncode == 0, result.stderr
    assert "at revision" in result.stdout


def test_the_installed_package_ships_the_dashboards_page(installed_package: Path) -> None:
    static = installed_package / "server" / "dashboard" / "static"
    assert sorted(p.name for p in static.iterdir()) == ["app.js", "index.html", "style.css"]


def test_0008_names_each_threads_graph_from_its_newest_run(empty_database_url: str) -> None:
    """Threads made before 0008 get graph_id and assistant_id from their
    newest run; keys a thread has already are kept."""
    url = empty_database_url
    _alembic(url, "upgrade", "0007_assistant_versions")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO threads (thread_id, metadata) VALUES "
            "('00000000-0000-0000-0000-00000000000a', '{\"x\": 1}'), "
            "('00000000-0000-0000-0000-00000000000b', '{\"graph_id\": \"mine\"}'), "
            "('00000000-0000-0000-0000-00000000000c', '{}')"
        )
        for thread, graph, assistant in (
            ("a", "old", "00000000-0000-0000-0000-0000000000f1"),
            ("a", "new", "00000000-0000-0000-0000-0000000000f2"),
            ("b", "new", "00000000-0000-0000-0000-0000000000f2"),
        ):
            conn.execute(
                "INSERT INTO runs (run_id, thread_id, assistant_id, kwargs) "
                "VALUES (gen_random_uuid(), %s, %s, jsonb_build_object('graph_id', %s::text))",
                (f"00000000-0000-0000-0000-00000000000{thread}", assistant, graph),
            )
    _alembic(url, "upgrade", "head")
    with psycopg.connect(url) as conn:
        rows = dict(conn.execute("SELECT thread_id::text, metadata FROM threads").fetchall())
    new = "00000000-0000-0000-0000-0000000000f2"
    assert rows["00000000-0000-0000-0000-00000000000a"] == {
        "x": 1,
        "graph_id": "new",
        "assistant_id": new,
    }
    assert rows["00000000-0000-0000-0000-00000000000b"] == {"graph_id": "mine", "assistant_id": new}
    assert rows["00000000-0000-0000-0000-00000000000c"] == {}  # no run, nothing to say

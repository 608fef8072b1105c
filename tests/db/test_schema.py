"""migrations/schema.sql is what the migrations build, and its renderer
refuses what it cannot show rather than leaving it out."""

from __future__ import annotations

import difflib

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue.db import migrate, schema

SCHEMA_FILE = migrate.migrations_dir() / "schema.sql"
REGENERATE = (
    "python -m pgqueue.db.schema --scratch postgresql://HOST/postgres > migrations/schema.sql"
)


def test_schema_sql_is_what_the_migrations_build(database_url: str) -> None:
    # database_url is a clone of the template migrated to head.
    built = schema.dump(database_url)
    written = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    if written != built:
        diff = "".join(
            difflib.unified_diff(
                written.splitlines(keepends=True),
                built.splitlines(keepends=True),
                "migrations/schema.sql",
                "what the migrations build",
            )
        )
        pytest.fail(
            f"migrations/schema.sql is out of date; regenerate it with\n    {REGENERATE}\n\n"
            + diff,
            pytrace=False,
        )


def test_the_live_body_of_a_replaced_function_is_shown() -> None:
    # pgqueue_lease_timeout is created by 0001 and replaced by 0006 (20 s).
    text = SCHEMA_FILE.read_text()
    start = text.index("FUNCTION public.pgqueue_lease_timeout()")
    assert "interval '20 seconds'" in text[start : text.index("$function$;", start)]


def test_an_object_it_cannot_show_stops_the_rendering(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
        with pytest.raises(schema.Unrendered, match="mood"):
            schema.render(conn)

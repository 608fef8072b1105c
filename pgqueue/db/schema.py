"""The current schema as one readable file, rendered from a migrated database.

``migrations/schema.sql`` is this module's output: what the migrations add up
to, for a reader who would otherwise replay seven revisions (and find two
bodies of one function) in their head. Regenerate it after changing a
migration::

    python -m pgqueue.db.schema --scratch postgresql://localhost/postgres \\
        > migrations/schema.sql

``--scratch`` builds a throwaway database on that server, migrates it to
head, renders it and drops it; without it the URL names a database that is
already migrated. ``tests/db/test_schema.py`` fails when the file and the
migrations disagree.

Rendered from the catalogs with PostgreSQL's own deparsers (pg_get_*def),
not by pg_dump: no pg_dump of the server's major version need be installed,
and the output carries no version banner, SET lines or owners, so the same
migrations give the same text on PostgreSQL 15 and 16. Everything is sorted
by name (in Python, not by the server's collation). Only the ``public``
schema is rendered; a kind of object this module does not know how to show
(an enum, a partitioned table, row security...) stops it with an error
instead of being left out.
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from pgqueue.db import migrate

# Introspection of the schema, not something pgqueue asks at runtime: these
# statements live here with their rendering, not in sql/.
_RELATIONS = """
SELECT c.oid, c.relname, c.relkind, c.reloptions, c.relrowsecurity,
       c.relispartition, obj_description(c.oid, 'pg_class') AS comment,
       EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) AS inherits,
       EXISTS (SELECT 1 FROM pg_depend d
               WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                 AND d.deptype IN ('a', 'i')) AS owned
FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind <> 'i'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
"""

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity, a.attgenerated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END AS collation,
       col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS = """
SELECT conname, contype, pg_get_constraintdef(oid, true) AS definition
FROM pg_constraint WHERE conrelid = %s
"""

# Indexes that back a constraint are shown by the constraint.
_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                                                  AND k.conrelid = i.indrelid)
"""

_TRIGGERS = """
SELECT tgname, pg_get_triggerdef(oid, true) AS definition
FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal
"""

_POLICIES = "SELECT count(*) AS n FROM pg_policy WHERE polrelid = %s"

_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS arguments, p.prokind,
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END AS definition,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
"""

# Types of their own (a table's row type and array types come with it).
_TYPES = """
SELECT t.typname FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typnamespace = 'public'::regnamespace
  AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend e
                  WHERE e.classid = 'pg_type'::regclass AND e.objid = t.oid AND e.deptype = 'e')
"""

_EXTENSIONS = """
SELECT extname FROM pg_extension WHERE extnamespace = 'public'::regnamespace
"""

_REVISION = """
SELECT CASE WHEN to_regclass('alembic_version') IS NOT NULL
            THEN (SELECT string_agg(version_num, ', ') FROM alembic_version) END AS revision
"""

# Constraint order within a table: keys first, then checks, then references.
_CONSTRAINT_ORDER = {"p": 0, "u": 1, "x": 2, "c": 3, "f": 4}
_KINDS = {"m": "materialized view", "p": "partitioned table", "f": "foreign table",
          "c": "composite type", "S": "sequence"}  # fmt: skip

HEADER = """\
-- The schema pgqueue's migrations build, as one file: generated, do not edit.
-- For reading: the migrations (migrations/versions/) build the database.
-- Regenerate after changing a migration, on any PostgreSQL server:
--     python -m pgqueue.db.schema --scratch postgresql://HOST/postgres > migrations/schema.sql
-- tests/db/test_schema.py fails when this file and the migrations disagree.
"""


class Unrendered(RuntimeError):
    """The schema holds an object this module cannot show yet."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(row: dict[str, Any]) -> str:
    parts = [f"    {row['attname']} {row['type']}"]
    if row["collation"]:
        parts.append(f'COLLATE "{row["collation"]}"')
    if row["attgenerated"] == "s":
        parts.append(f"GENERATED ALWAYS AS ({row['default']}) STORED")
    elif row["default"] is not None:
        parts.append(f"DEFAULT {row['default']}")
    if row["attidentity"] == "a":
        parts.append("GENERATED ALWAYS AS IDENTITY")
    elif row["attidentity"] == "d":
        parts.append("GENERATED BY DEFAULT AS IDENTITY")
    if row["attnotnull"]:
        parts.append("NOT NULL")
    return " ".join(parts)


def _comments(kind: str, name: str, comment: str | None) -> list[str]:
    return [] if comment is None else [f"COMMENT ON {kind} {name} IS {_literal(comment)};"]


def _table(conn: psycopg.Connection[dict[str, Any]], rel: dict[str, Any]) -> str:
    name, oid = rel["relname"], rel["oid"]
    if rel["relrowsecurity"] or conn.execute(_POLICIES, (oid,)).fetchone() != {"n": 0}:
        raise Unrendered(f"table {name}: row level security and policies")
    if rel["relispartition"] or rel["inherits"]:
        raise Unrendered(f"table {name}: partitions and inheritance")
    columns = conn.execute(_COLUMNS, (oid,)).fetchall()
    constraints = sorted(
        conn.execute(_CONSTRAINTS, (oid,)).fetchall(),
        key=lambda c: (_CONSTRAINT_ORDER.get(c["contype"], 9), c["conname"]),
    )
    body = [_column(c) for c in columns]
    body += [f"    CONSTRAINT {c['conname']} {c['definition']}" for c in constraints]
    options = f" WITH ({', '.join(rel['reloptions'])})" if rel["reloptions"] else ""
    lines = [f"CREATE TABLE {name} (", ",\n".join(body), f"){options};"]
    for row in sorted(conn.execute(_INDEXES, (oid,)).fetchall(), key=lambda r: r["relname"]):
        lines.append(f"{row['definition']};")
    for row in sorted(conn.execute(_TRIGGERS, (oid,)).fetchall(), key=lambda r: r["tgname"]):
        lines.append(f"{row['definition']};")
    lines += _comments("TABLE", name, rel["comment"])
    for c in columns:
        lines += _comments("COLUMN", f"{name}.{c['attname']}", c["comment"])
    return "\n".join(lines)


# A pretty-printed view's clause lines: its one FROM item, and any join.
_FROM_LINE = re.compile(r"^\s*FROM\b.*$", re.MULTILINE)
_SINGLE_FROM = re.compile(r"^\s*FROM (\w+)(?: (\w+))?$")
_JOIN_LINE = re.compile(r"^\s*(\w+ )*JOIN ", re.MULTILINE)
# Quoted text, which a column reference never is part of.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _unqualified(definition: str) -> str:
    """A view over one relation as PostgreSQL 16 prints it: from 16 on,
    its columns are no longer qualified by the relation's name (``status``,
    not ``runs.status``). The one difference between 15 and 16 in what this
    module renders, so older servers' text is brought to the newer form."""
    froms = _FROM_LINE.findall(definition)
    single = _SINGLE_FROM.match(froms[0]) if len(froms) == 1 else None
    if single is None or _JOIN_LINE.search(definition):
        return definition
    ref = re.escape(single.group(2) or single.group(1))
    qualified = re.compile(rf"(?<![\w.\"]){ref}\.(?=[A-Za-z_\"])")
    parts: list[str] = []
    last = 0
    for quoted in _QUOTED.finditer(definition):
        parts.append(qualified.sub("", definition[last : quoted.start()]))
        parts.append(quoted.group())
        last = quoted.end()
    parts.append(qualified.sub("", definition[last:]))
    return "".join(parts)


def _view(conn: psycopg.Connection[dict[str, Any]], rel: dict[str, Any]) -> str:
    row = conn.execute("SELECT pg_get_viewdef(%s, true) AS d", (rel["oid"],)).fetchone()
    assert row is not None
    definition = row["d"].rstrip().rstrip(";")
    if conn.info.server_version < 160000:
        definition = _unqualified(definition)
    lines = [f"CREATE VIEW {rel['relname']} AS", f"{definition};"]
    return "\n".join(lines + _comments("VIEW", rel["relname"], rel["comment"]))


def _function(row: dict[str, Any]) -> str:
    name = f"{row['proname']}({row['arguments']})"
    if row["definition"] is None:
        raise Unrendered(f"function {name}: aggregates and window functions")
    lines = [row["definition"].rstrip() + ";"]
    return "\n".join(lines + _comments("FUNCTION", name, row["comment"]))


def render(conn: psycopg.Connection[dict[str, Any]]) -> str:
    """The schema of ``conn``'s database, as schema.sql holds it."""
    with conn.transaction():
        # Names as the migrations write them: unqualified, public on the path.
        conn.execute("SET LOCAL search_path = public")
        types = [r["typname"] for r in conn.execute(_TYPES).fetchall()]
        if types:
            raise Unrendered(f"types {sorted(types)}")
        sections: list[str] = []
        for ext in sorted(r["extname"] for r in conn.execute(_EXTENSIONS).fetchall()):
            sections.append(f"CREATE EXTENSION {ext};")
        tables: list[str] = []
        views: list[str] = []
        for rel in sorted(conn.execute(_RELATIONS).fetchall(), key=lambda r: r["relname"]):
            kind = rel["relkind"]
            if kind == "r":
                tables.append(_table(conn, rel))
            elif kind == "v":
                views.append(_view(conn, rel))
            elif kind == "S" and rel["owned"]:
                continue  # an identity or serial column's sequence
            else:
                raise Unrendered(f"{_KINDS.get(kind, kind)} {rel['relname']}")
        functions = sorted(
            conn.execute(_FUNCTIONS).fetchall(), key=lambda r: (r["proname"], r["arguments"])
        )
        revision = conn.execute(_REVISION).fetchone()
    head = HEADER + f"-- Revision: {revision['revision'] if revision else None}\n"
    parts = [head]
    for title, items in (
        ("Extensions", sections),
        ("Tables, with their indexes and triggers", tables),
        ("Views", views),
        ("Functions", [_function(f) for f in functions]),
    ):
        if items:
            parts.append(f"\n-- {title} " + "-" * (74 - len(title)) + "\n\n")
            parts.append("\n\n".join(items) + "\n")
    # Trailing blanks in function bodies mean nothing and trip editors.
    return "\n".join(line.rstrip() for line in "".join(parts).splitlines()) + "\n"


def dump(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        return render(conn)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A database migrated to head on ``server_url``'s server, dropped after."""
    name = f"pgqueue_schema_{uuid.uuid4().hex[:12]}"
    ident = sql.Identifier(name)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    try:
        url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pgqueue.db.schema", description="Print the schema as schema.sql holds it."
    )
    parser.add_argument("database_url", help="a migrated database (or, with --scratch, a server)")
    parser.add_argument(
        "--scratch",
        action="store_true",
        help="migrate a new database on that server to head, print it, drop it",
    )
    args = parser.parse_args(argv)
    if args.scratch:
        with scratch_database(args.database_url) as url:
            text = dump(url)
    else:
        text = dump(args.database_url)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

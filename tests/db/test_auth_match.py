"""``pgqueue_auth_match(metadata, filter)`` (migration 0010), the one SQL
function every resource query filters its rows through, and the check
(``pgqueue.resources.visibility.matching``) that keeps a filter it cannot
read from ever reaching it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgqueue.errors import InvalidFilter
from pgqueue.resources.visibility import EVERYTHING, matching
from tests.support import dbs


@pytest.fixture(scope="module")
def conn(admin_url: str, template_db: str) -> Iterator[psycopg.Connection[Any]]:
    name = dbs.create_database(admin_url, template_db)
    try:
        with psycopg.connect(dbs.with_database(admin_url, name), autocommit=True) as c:
            yield c
    finally:
        dbs.drop_database(admin_url, name)


def match(conn: psycopg.Connection[Any], metadata: Any, filter_: Any) -> bool | None:
    """The function's answer; Python None stands for SQL NULL."""
    row = conn.execute(
        "SELECT pgqueue_auth_match(%s::jsonb, %s::jsonb)",
        (
            None if metadata is None else json.dumps(metadata),
            None if filter_ is None else json.dumps(filter_),
        ),
    ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


OWNED = {"owner": "a", "team": "x", "members": ["a", "b"], "n": 1, "obj": {"k": [1]}}
SYSTEM = {"created_by": "system"}

# (filter, metadata, expected)
CASES: list[tuple[Any, Any, bool]] = [
    # exact: jsonb equality, type and value
    ({"owner": "a"}, OWNED, True),
    ({"owner": "b"}, OWNED, False),
    ({"n": 1}, OWNED, True),
    ({"n": "1"}, OWNED, False),
    ({"n": 1.0}, OWNED, True),
    ({"members": ["a", "b"]}, OWNED, True),
    ({"members": ["b", "a"]}, OWNED, False),
    # $eq: the same, also for objects (a plain dict value reads as operators)
    ({"owner": {"$eq": "a"}}, OWNED, True),
    ({"owner": {"$eq": "b"}}, OWNED, False),
    ({"obj": {"$eq": {"k": [1]}}}, OWNED, True),
    ({"obj": {"$eq": {"k": [2]}}}, OWNED, False),
    # $contains, a scalar: the array has it
    ({"members": {"$contains": "a"}}, OWNED, True),
    ({"members": {"$contains": "c"}}, OWNED, False),
    ({"ids": {"$contains": 2}}, {"ids": [1, 2, 3]}, True),
    ({"ids": {"$contains": "2"}}, {"ids": [1, 2, 3]}, False),
    # $contains, a list: the array has every element
    ({"members": {"$contains": ["a", "b"]}}, OWNED, True),
    ({"members": {"$contains": ["b"]}}, OWNED, True),
    ({"members": {"$contains": ["a", "c"]}}, OWNED, False),
    ({"members": {"$contains": ["a"]}}, {"members": ["b"]}, False),
    # $contains on a field that is no array: never
    ({"owner": {"$contains": "a"}}, OWNED, False),
    ({"owner": {"$contains": "a"}}, {"owner": "abc"}, False),
    ({"obj": {"$contains": "k"}}, OWNED, False),
    ({"obj": {"$contains": {"k": [1]}}}, OWNED, False),
    ({"n": {"$contains": 1}}, OWNED, False),
    # a missing key matches nothing
    ({"owner": "a"}, {}, False),
    ({"owner": "a"}, {"team": "x"}, False),
    ({"owner": {"$eq": "a"}}, {}, False),
    ({"members": {"$contains": "a"}}, {}, False),
    ({"owner": "a"}, None, False),
    # $and: all of them
    ({"$and": [{"owner": "a"}, {"team": "x"}]}, OWNED, True),
    ({"$and": [{"owner": "a"}, {"team": "y"}]}, OWNED, False),
    ({"$and": [{"owner": "b"}, {"team": "x"}]}, OWNED, False),
    ({"$and": [{"members": {"$contains": "b"}}, {"n": {"$eq": 1}}]}, OWNED, True),
    # $or: any of them
    ({"$or": [{"owner": "a"}, SYSTEM]}, OWNED, True),
    ({"$or": [{"owner": "a"}, SYSTEM]}, SYSTEM, True),
    ({"$or": [{"owner": "a"}, SYSTEM]}, {"owner": "b"}, False),
    ({"$or": [{"owner": "a"}, SYSTEM]}, {}, False),
    # nested, two deep
    ({"$or": [{"$and": [{"owner": "a"}, {"team": "x"}]}, SYSTEM]}, OWNED, True),
    ({"$or": [{"$and": [{"owner": "a"}, {"team": "y"}]}, SYSTEM]}, OWNED, False),
    ({"$or": [{"$and": [{"owner": "a"}, {"team": "y"}]}, SYSTEM]}, SYSTEM, True),
    # several keys: all of them, and next to an operator too
    ({"owner": "a", "team": "x"}, OWNED, True),
    ({"owner": "a", "team": "y"}, OWNED, False),
    ({"owner": "b", "team": "x"}, OWNED, False),
    ({"owner": "a", "$or": [{"team": "y"}, {"n": 1}]}, OWNED, True),
    ({"owner": "a", "$or": [{"team": "y"}, {"n": 2}]}, OWNED, False),
    ({"owner": "b", "$or": [{"team": "x"}, {"n": 1}]}, OWNED, False),
    # no filter: every row
    (None, OWNED, True),
    (None, {}, True),
    (None, None, True),
    ({}, OWNED, True),
]


@pytest.mark.parametrize(("filter_", "metadata", "expected"), CASES, ids=[str(c) for c in CASES])
def test_the_function_evaluates_a_filter(
    conn: psycopg.Connection[Any], filter_: Any, metadata: Any, expected: bool
) -> None:
    assert match(conn, metadata, filter_) is expected


def test_it_filters_rows_in_a_where_clause(conn: psycopg.Connection[Any]) -> None:
    """As resource queries use it: one parameter, NULL meaning everything."""
    rows = [
        ("mine", {"owner": "a"}),
        ("theirs", {"owner": "b"}),
        ("system", SYSTEM),
        ("bare", {}),
    ]
    query = (
        "SELECT name FROM (VALUES {}) AS t(name, metadata) "
        "WHERE pgqueue_auth_match(metadata, %s::jsonb) ORDER BY name"
    ).format(", ".join(["(%s, %s::jsonb)"] * len(rows)))
    flat = [x for name, md in rows for x in (name, json.dumps(md))]

    def names(filter_: Any) -> list[str]:
        param = None if filter_ is None else json.dumps(filter_)
        return [r[0] for r in conn.execute(query, [*flat, param]).fetchall()]

    assert names({"owner": "a"}) == ["mine"]
    assert names({"$or": [{"owner": "a"}, SYSTEM]}) == ["mine", "system"]
    assert names({"owner": "c"}) == []
    assert names(None) == ["bare", "mine", "system", "theirs"]


# -- the check before SQL ------------------------------------------------------

ACCEPTED: list[Any] = [
    {"owner": "a"},
    {"owner": {"$eq": "a"}},
    {"members": {"$contains": "a"}},
    {"members": {"$contains": ["a", "b"]}},
    {"owner": "a", "team": "x"},
    {"$and": [{"owner": "a"}, {"team": "x"}]},
    {"$or": [{"owner": "a"}, SYSTEM]},
    {"$or": [{"$and": [{"owner": "a"}, {"team": "x"}]}, SYSTEM]},
    {"owner": "a", "$or": [{"team": "x"}, {"n": 1}]},
]

REFUSED: list[Any] = [
    # not a dict
    ["owner", "a"],
    "owner",
    None,
    42,
    # unknown operators, at the top and on a field
    {"$not": {"owner": "a"}},
    {"$nor": [{"owner": "a"}, {"owner": "b"}]},
    {"owner": {"$ne": "a"}},
    {"owner": {"$in": ["a", "b"]}},
    {"owner": {"$gt": 1}},
    # a dict value is one operator, no more, no less
    {"owner": {"$eq": "a", "$contains": "a"}},
    {"owner": {}},
    {"obj": {"k": 1}},
    # $and / $or take a list of at least two filters
    {"$or": [{"owner": "a"}]},
    {"$and": [{"owner": "a"}]},
    {"$or": []},
    {"$or": {"owner": "a"}},
    {"$and": "owner"},
    {"$or": [{"owner": "a"}, "b"]},
    # nested at most two deep
    {"$or": [{"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"d": 4}]},
    {"$and": [{"$and": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"d": 4}]},
    # an invalid filter inside a valid one
    {"$or": [{"owner": {"$ne": "a"}}, SYSTEM]},
    # keys name fields
    {1: "a"},
]


@pytest.mark.parametrize("filter_", ACCEPTED, ids=[str(f) for f in ACCEPTED])
def test_matching_accepts_what_the_function_reads(
    conn: psycopg.Connection[Any], filter_: Any
) -> None:
    visible = matching(filter_)
    assert visible.filter is not None and json.loads(visible.filter) == filter_
    # What SQL receives is what it evaluates: the owner's row passes.
    assert match(conn, OWNED, json.loads(visible.filter)) is True
    assert match(conn, {"owner": "someone else"}, json.loads(visible.filter)) is False


def test_an_empty_filter_is_every_row() -> None:
    assert matching({}) == EVERYTHING
    assert EVERYTHING.everything and EVERYTHING.filter is None


@pytest.mark.parametrize("filter_", REFUSED, ids=[repr(f) for f in REFUSED])
def test_matching_refuses_what_it_cannot_apply(filter_: Any) -> None:
    with pytest.raises(InvalidFilter):
        matching(filter_)


def test_every_case_passes_its_filters_containment(conn: psycopg.Connection[Any]) -> None:
    """pgqueue_auth_containment(filter) is what the GIN index looks up
    first: every row the filter accepts must contain it, or the index
    would hide rows the filter lets through."""
    for filter_, metadata, expected in CASES:
        if not expected or filter_ is None:
            continue
        row = conn.execute(
            "SELECT %s::jsonb @> pgqueue_auth_containment(%s::jsonb)",
            (json.dumps(metadata), json.dumps(filter_)),
        ).fetchone()
        assert row is not None and row[0], (filter_, metadata)


def test_an_owner_filter_can_use_the_metadata_index(conn: psycopg.Connection[Any]) -> None:
    """pgqueue_auth_match_indexed (what searches call) is inlined into the
    query that calls it, so its containment part can be served by
    threads_metadata_idx (seq scans are
    switched off here only to show the index is usable: on a table this
    small the planner would rightly scan it)."""
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT thread_id FROM threads"
                " WHERE pgqueue_auth_match_indexed(metadata, %s::jsonb)",
                (json.dumps({"owner": "a"}),),
            ).fetchall()
        )
    assert "threads_metadata_idx" in plan, plan


def test_the_indexed_form_answers_as_the_plain_one(conn: psycopg.Connection[Any]) -> None:
    for filter_, metadata, _ in CASES:
        row = conn.execute(
            "SELECT pgqueue_auth_match(%s::jsonb, %s::jsonb),"
            " pgqueue_auth_match_indexed(%s::jsonb, %s::jsonb)",
            (json.dumps(metadata), None if filter_ is None else json.dumps(filter_)) * 2,
        ).fetchone()
        assert row is not None and row[0] == row[1], (filter_, metadata)

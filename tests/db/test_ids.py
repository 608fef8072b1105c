"""Run ids: UUIDv7 as RFC 9562 lays it out, in creation order.

The generator keeps its state in two module globals (the last millisecond
used and the counter within it). Tests that need a given state set them
with ``monkeypatch``, which puts them back afterwards; the function itself
runs unchanged.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from pgqueue.db import ids
from pgqueue.db.ids import uuid7

COUNTER_MAX = 0xFFF


def millis(u: uuid.UUID) -> int:
    return u.int >> 80


def counter(u: uuid.UUID) -> int:
    return (u.int >> 64) & COUNTER_MAX


def test_version_and_variant_bits() -> None:
    for _ in range(100):
        u = uuid7()
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert str(u)[14] == "7"
        assert str(u)[19] in "89ab"


def test_the_timestamp_is_the_wall_clock_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    # A process that has made no id yet.
    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= millis(u) <= after
    assert counter(u) == 0


def test_ids_sort_in_creation_order_and_never_repeat() -> None:
    made = [uuid7() for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    # As text too: the hex form is fixed-width, so it sorts the same way
    # (what a client or a text column sees).
    assert [str(u) for u in made] == sorted(str(u) for u in made)


def test_within_one_millisecond_the_counter_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock read behind the last id used (a step back, or simply the
    # same millisecond): the generator stays on its last millisecond and
    # counts. A minute ahead of now, so the real clock cannot catch up.
    frozen = time.time_ns() // 1_000_000 + 60_000
    monkeypatch.setattr(ids, "_last_ms", frozen)
    monkeypatch.setattr(ids, "_counter", 0)
    made = [uuid7() for _ in range(100)]
    assert {millis(u) for u in made} == {frozen}
    assert [counter(u) for u in made] == list(range(1, 101))
    assert made == sorted(made)


def test_a_spent_counter_borrows_the_next_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.time_ns() // 1_000_000 + 60_000
    monkeypatch.setattr(ids, "_last_ms", frozen)
    monkeypatch.setattr(ids, "_counter", COUNTER_MAX - 2)
    made = [uuid7() for _ in range(5)]
    assert [(millis(u) - frozen, counter(u)) for u in made] == [
        (0, COUNTER_MAX - 1),
        (0, COUNTER_MAX),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert made == sorted(made)


def test_a_whole_millisecond_of_ids_stays_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # More ids than the 12-bit counter holds, all in one millisecond: each
    # rollover borrows the next one and the order holds throughout.
    frozen = time.time_ns() // 1_000_000 + 60_000
    monkeypatch.setattr(ids, "_last_ms", frozen)
    monkeypatch.setattr(ids, "_counter", 0)
    made = [uuid7() for _ in range(3 * (COUNTER_MAX + 1))]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {millis(u) - frozen for u in made} == {0, 1, 2, 3}


def test_threads_share_one_sequence() -> None:
    made: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def make(out: list[uuid.UUID]) -> None:
        out.extend(uuid7() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [u for out in made for u in out]
    assert len(set(everything)) == len(everything)
    for out in made:
        assert out == sorted(out)

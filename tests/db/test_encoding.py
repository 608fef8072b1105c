"""Graph state and stream chunks as JSON: what the encoder does with values
that are not JSON types, and the two ways a jsonb value travels (a psycopg
parameter out, asyncpg's text back)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from psycopg.adapt import PyFormat, Transformer
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from pgqueue.db.encoding import dumps, jsonb, loads


class Point(BaseModel):
    x: int
    y: int
    tags: list[str] = []


@dataclass
class Step:
    name: str
    seen: set[str] = field(default_factory=set)
    point: Point | None = None


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def roundtrip(value: Any) -> Any:
    return json.loads(dumps(value))


def test_json_types_are_written_as_the_standard_library_writes_them() -> None:
    value = {"s": "é", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, "a"], "d": {"k": []}}
    assert dumps(value) == json.dumps(value)
    # Tuples are lists, as in JSON generally.
    assert roundtrip({"t": (1, 2)}) == {"t": [1, 2]}


def test_pydantic_models_are_written_as_their_dump() -> None:
    assert roundtrip({"p": Point(x=1, y=2, tags=["a"])}) == {"p": {"x": 1, "y": 2, "tags": ["a"]}}


def test_langchain_messages_are_written_as_their_dump() -> None:
    out = roundtrip(
        {"messages": [HumanMessage("hi", id="h1"), AIMessage("hello", id="a1", name="bot")]}
    )
    human, ai = out["messages"]
    assert human == HumanMessage("hi", id="h1").model_dump()
    assert (human["type"], human["content"], human["id"]) == ("human", "hi", "h1")
    assert (ai["type"], ai["content"], ai["id"], ai["name"]) == ("ai", "hello", "a1", "bot")
    # A chunk keeps its own type: adding chunks up is messages.py's job.
    assert roundtrip(AIMessageChunk(content="he", id="c1"))["type"] == "AIMessageChunk"


def test_dataclasses_are_written_as_their_fields_all_the_way_down() -> None:
    step = Step("plan", {"a"}, Point(x=3, y=4))
    assert roundtrip([step]) == [
        {"name": "plan", "seen": ["a"], "point": {"x": 3, "y": 4, "tags": []}}
    ]


def test_sets_are_written_as_lists() -> None:
    out = roundtrip({"s": {3, 1, 2}, "f": frozenset({"x"}), "empty": set()})
    assert sorted(out["s"]) == [1, 2, 3]
    assert out["f"] == ["x"]
    assert out["empty"] == []


def test_anything_else_is_written_as_its_str() -> None:
    assert roundtrip({"o": Opaque()}) == {"o": "<opaque thing>"}
    assert roundtrip([Opaque(), 1]) == ["<opaque thing>", 1]


def _dumped(param: Jsonb, format: PyFormat) -> tuple[int, bytes]:
    dumper = Transformer().get_dumper(param, format)
    out = dumper.dump(param)
    assert out is not None
    return dumper.oid, bytes(out)


def test_jsonb_is_a_psycopg_jsonb_parameter_encoded_by_the_same_rules() -> None:
    value = {"step": Step("plan", {"a"}), "o": Opaque(), "m": HumanMessage("hi", id="h1")}
    param = jsonb(value)
    assert isinstance(param, Jsonb)
    assert param.obj is value
    oid, text = _dumped(param, PyFormat.TEXT)
    assert oid == 3802  # jsonb
    assert text == dumps(value).encode()
    # The binary form is a version byte, then the same text.
    oid, binary = _dumped(param, PyFormat.BINARY)
    assert oid == 3802
    assert binary == b"\x01" + dumps(value).encode()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ('{"a": [1, 2], "b": null}', {"a": [1, 2], "b": None}),
        ('"text"', "text"),
        ("[]", []),
        ("null", None),
    ],
)
def test_loads_reads_json_text(column: str, value: Any) -> None:
    assert loads(column) == value


@pytest.mark.parametrize("column", [None, {"already": "decoded"}, [1, 2], 3, b'{"a": 1}'])
def test_loads_passes_anything_but_text_through(column: Any) -> None:
    # NULL, or a value a codec already decoded: returned as it is.
    assert loads(column) is column


def test_loads_refuses_text_that_is_not_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("{not json")


def test_what_dumps_writes_loads_reads_back() -> None:
    value = {"messages": [HumanMessage("hi", id="h1")], "seen": {"x"}, "n": 1}
    assert loads(dumps(value)) == {
        "messages": [HumanMessage("hi", id="h1").model_dump()],
        "seen": ["x"],
        "n": 1,
    }

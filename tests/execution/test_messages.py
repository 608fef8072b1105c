"""Stream mode ``messages`` as the platform sends it: one run's
``(message or chunk, metadata)`` pairs in, the platform's
``messages/metadata``, ``messages/partial`` and ``messages/complete`` out."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)

from pgqueue.execution.messages import COMPLETE, METADATA, PARTIAL, MessageEvents

META: dict[str, Any] = {"langgraph_node": "chat", "langgraph_step": 1}


def shown(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The events with each message as its dump (what goes over the wire)."""
    out: list[tuple[str, Any]] = []
    for name, data in events:
        if name == METADATA:
            out.append((name, data))
        else:
            assert isinstance(data, list) and len(data) == 1
            assert isinstance(data[0], BaseMessage)
            out.append((name, data[0].model_dump()))
    return out


def test_the_event_names_are_the_platforms() -> None:
    assert (METADATA, PARTIAL, COMPLETE) == (
        "messages/metadata",
        "messages/partial",
        "messages/complete",
    )


def test_chunks_of_one_message_add_up_in_partials() -> None:
    m = MessageEvents()
    first = shown(m.events((AIMessageChunk(content="Hel", id="a"), META)))
    assert first[0] == (METADATA, {"a": {"metadata": META}})
    assert first[1][0] == PARTIAL
    assert (first[1][1]["content"], first[1][1]["id"]) == ("Hel", "a")

    second = shown(m.events((AIMessageChunk(content="lo", id="a"), META)))
    [(name, message)] = second  # no second metadata for the same id
    assert name == PARTIAL
    assert (message["content"], message["id"]) == ("Hello", "a")

    [(name, message)] = shown(m.events((AIMessageChunk(content=" there", id="a"), META)))
    assert message["content"] == "Hello there"


def test_partials_are_sent_as_plain_messages_not_chunks() -> None:
    m = MessageEvents()
    [_, (name, message)] = shown(m.events((AIMessageChunk(content="x", id="a"), META)))
    assert name == PARTIAL
    assert message["type"] == "ai"
    [(_, message)] = m.events((AIMessageChunk(content="y", id="a"), META))[-1:]
    assert isinstance(message[0], AIMessage)
    assert not isinstance(message[0], AIMessageChunk)


def test_tool_call_chunks_are_added_up_too() -> None:
    m = MessageEvents()
    m.events(
        (
            AIMessageChunk(
                content="",
                id="a",
                tool_call_chunks=[{"name": "search", "args": '{"q": ', "id": "t1", "index": 0}],
            ),
            META,
        )
    )
    [(_, [message])] = m.events(
        (
            AIMessageChunk(
                content="",
                id="a",
                tool_call_chunks=[{"name": None, "args": '"pg"}', "id": None, "index": 0}],
            ),
            META,
        )
    )
    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {"name": "search", "args": {"q": "pg"}, "id": "t1", "type": "tool_call"}
    ]


def test_a_whole_message_is_complete_at_once() -> None:
    m = MessageEvents()
    out = shown(m.events((AIMessage(content="Hi!", id="b"), META)))
    assert out[0] == (METADATA, {"b": {"metadata": META}})
    assert out[1][0] == COMPLETE
    assert (out[1][1]["type"], out[1][1]["content"], out[1][1]["id"]) == ("ai", "Hi!", "b")


def test_a_whole_message_replaces_the_chunks_that_led_up_to_it() -> None:
    m = MessageEvents()
    m.events((AIMessageChunk(content="Hel", id="a"), META))
    m.events((AIMessageChunk(content="lo", id="a"), META))
    [(name, message)] = shown(m.events((AIMessage(content="Hello!", id="a"), META)))
    assert name == COMPLETE
    assert message["content"] == "Hello!"


def test_metadata_is_sent_once_per_message_id() -> None:
    m = MessageEvents()
    names = []
    chunks: list[tuple[BaseMessage, dict[str, Any]]] = [
        (AIMessageChunk(content="a", id="1"), META),
        (AIMessageChunk(content="b", id="2"), {"langgraph_node": "other"}),
        (AIMessageChunk(content="c", id="1"), META),
        (AIMessage(content="ac", id="1"), META),
        (AIMessageChunk(content="d", id="2"), META),
    ]
    for chunk in chunks:
        names.append([name for name, _ in m.events(chunk)])
    assert names == [
        [METADATA, PARTIAL],
        [METADATA, PARTIAL],
        [PARTIAL],
        [COMPLETE],
        [PARTIAL],
    ]


def test_messages_with_different_ids_are_kept_apart() -> None:
    m = MessageEvents()
    m.events((AIMessageChunk(content="one", id="1"), META))
    m.events((AIMessageChunk(content="two", id="2"), META))
    [(_, [first])] = m.events((AIMessageChunk(content="!", id="1"), META))
    [(_, [second])] = m.events((AIMessageChunk(content="?", id="2"), META))
    assert (first.content, second.content) == ("one!", "two?")


def test_a_message_as_a_dict_is_taken_whole() -> None:
    m = MessageEvents()
    out = shown(m.events(({"type": "human", "content": "hi", "id": "h1"}, META)))
    assert out[0] == (METADATA, {"h1": {"metadata": META}})
    assert out[1][0] == COMPLETE
    assert (out[1][1]["type"], out[1][1]["content"], out[1][1]["id"]) == ("human", "hi", "h1")
    # The role/content form as well.
    [_, (name, message)] = shown(m.events(({"role": "assistant", "content": "yo"}, META)))
    assert (name, message["type"], message["content"]) == (COMPLETE, "ai", "yo")


def test_other_message_types_pass_through() -> None:
    m = MessageEvents()
    tool = ToolMessage(content="42", tool_call_id="t1", id="tm")
    [_, (name, message)] = shown(m.events((tool, META)))
    assert (name, message["type"], message["tool_call_id"]) == (COMPLETE, "tool", "t1")
    human = HumanMessage("again", id="h")
    [_, (name, message)] = shown(m.events((human, META)))
    assert (name, message["type"]) == (COMPLETE, "human")


def test_messages_without_an_id_stand_alone() -> None:
    m = MessageEvents()
    first = m.events((AIMessageChunk(content="Hel"), META))
    second = m.events((AIMessageChunk(content="lo"), META))
    # Each is a message of its own: metadata for each, under distinct keys,
    # and nothing added up.
    for events, content in ((first, "Hel"), (second, "lo")):
        assert [name for name, _ in events] == [METADATA, PARTIAL]
        assert events[0][1][next(iter(events[0][1]))] == {"metadata": META}
        assert events[1][1][0].content == content
    assert set(first[0][1]) != set(second[0][1])
    # A whole message without an id, too.
    [(name, _), (name2, [message])] = m.events((AIMessage(content="whole"), META))
    assert (name, name2, message.content) == (METADATA, COMPLETE, "whole")


def test_each_run_starts_from_nothing() -> None:
    one, two = MessageEvents(), MessageEvents()
    one.events((AIMessageChunk(content="a", id="x"), META))
    out = two.events((AIMessageChunk(content="b", id="x"), META))
    assert [name for name, _ in out] == [METADATA, PARTIAL]
    assert out[1][1][0].content == "b"

"""Stream mode ``messages`` as the platform sends it.

LangGraph's ``messages`` mode yields ``(message or chunk, metadata)`` pairs:
what langgraph-sdk calls ``messages-tuple`` and receives as ``messages``
events unchanged. A client that asks for ``messages`` instead expects the
platform's three events, which spare it the work of adding chunks up:

- ``messages/metadata``: ``{id: {"metadata": ...}}``, once per message, when
  its first chunk arrives;
- ``messages/partial``: ``[message so far]`` after each chunk of a message
  that is still being generated (a ``BaseMessageChunk``);
- ``messages/complete``: ``[message]`` for a message that arrived whole.

The messages sent are the sum of the chunks seen so far for that id, as a
plain message (``type: "ai"``, not ``"AIMessageChunk"``).
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    BaseMessageChunk,
    convert_to_messages,
    message_chunk_to_message,
)

METADATA = "messages/metadata"
PARTIAL = "messages/partial"
COMPLETE = "messages/complete"


class MessageEvents:
    """Turns one run's ``messages`` chunks into the platform's events; keeps
    the running sum of each message's chunks."""

    def __init__(self) -> None:
        self._so_far: dict[str, BaseMessage] = {}

    def events(self, chunk: tuple[Any, dict[str, Any]]) -> list[tuple[str, Any]]:
        message, metadata = chunk
        if not isinstance(message, BaseMessage):
            # A message as a dict (from a remote graph, say): taken as whole.
            message = convert_to_messages([message])[0]
        # A message without an id cannot be added to: it stands alone.
        key = message.id or str(uuid.uuid4())
        out: list[tuple[str, Any]] = []
        earlier = self._so_far.get(key)
        if earlier is None:
            out.append((METADATA, {key: {"metadata": metadata}}))
        if isinstance(earlier, BaseMessageChunk) and isinstance(message, BaseMessageChunk):
            self._so_far[key] = earlier + message
        else:
            # The first chunk, or a whole message (which replaces the chunks
            # that led up to it).
            self._so_far[key] = message
        name = PARTIAL if isinstance(message, BaseMessageChunk) else COMPLETE
        out.append((name, [message_chunk_to_message(self._so_far[key])]))
        return out

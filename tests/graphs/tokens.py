"""A chat model that streams TOKENS tokens, ``tok0`` .. ``tok499``, a few
milliseconds apart, with no network: a run whose "messages" stream is long
enough to reconnect to many times (tests/scenarios/test_stream_reconnect_many.py),
and one whose first attempt fails halfway (tests/core/test_live.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph

TOKENS = 500
DELAY = 0.005
# retried_once: how many tokens each attempt streams; the first attempt
# fails (retriably) halfway.
RETRIED_TOKENS = 40


class UpstreamBusy(Exception):
    """Retried by the executor (``retriable``)."""

    retriable = True


class TokenModel(BaseChatModel):
    """Replies ``tok0tok1...``, streamed one ``tok<i>`` per chunk."""

    tokens: int = TOKENS
    delay: float = DELAY
    # Raise UpstreamBusy before this token (None: never).
    fail_at: int | None = None

    @property
    def _llm_type(self) -> str:
        return "token-stream"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = "".join(f"tok{i}" for i in range(self.tokens))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(self.tokens):
            await asyncio.sleep(self.delay)
            if i == self.fail_at:
                raise UpstreamBusy(f"stopped before tok{i}")
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=f"tok{i}"))
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


async def speak(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await TokenModel().ainvoke(state["messages"])]}


_tokens = StateGraph(MessagesState)
_tokens.add_node("speak", speak)
_tokens.add_edge(START, "speak")
_tokens.add_edge("speak", END)
tokens = _tokens.compile()


async def speak_retried(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    """Streams RETRIED_TOKENS tokens; on the run's first attempt it fails
    retriably halfway, so the worker runs it again."""
    first = int(config.get("metadata", {}).get("run_attempt") or 0) == 1
    model = TokenModel(tokens=RETRIED_TOKENS, fail_at=RETRIED_TOKENS // 2 if first else None)
    return {"messages": [await model.ainvoke(state["messages"])]}


_retried = StateGraph(MessagesState)
_retried.add_node("speak", speak_retried)
_retried.add_edge(START, "speak")
_retried.add_edge("speak", END)
retried_once = _retried.compile()

"""A chat model that streams TOKENS tokens, ``tok0`` .. ``tok499``, a few
milliseconds apart, with no network: a run whose "messages" stream is long
enough to reconnect to many times (tests/scenarios/test_stream_reconnect_many.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

TOKENS = 500
DELAY = 0.005


class TokenModel(BaseChatModel):
    """Replies ``tok0tok1...``, streamed one ``tok<i>`` per chunk."""

    tokens: int = TOKENS
    delay: float = DELAY

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

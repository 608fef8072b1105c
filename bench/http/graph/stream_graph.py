"""The streaming benchmark's graph ("chat"): one node whose chat model streams
TOKENS tokens, one every TOKEN_INTERVAL seconds, as an LLM behind an agent
would. Every peer serves this file, so the figures measure how each server
carries a stream of tokens, not the work (an ideal run takes 2 s of sleeping).

The model is a real BaseChatModel subclass, so that LangGraph's "messages"
stream mode sees its tokens through the same callbacks as a provider's model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

TOKENS = 100
TOKEN_INTERVAL = 0.02  # seconds between tokens: 100 tokens in 2 s


def token(i: int) -> str:
    return f"tok{i} "


class TokenModel(BaseChatModel):
    """Answers every prompt with TOKENS tokens "tok0 ", "tok1 ", ..."""

    @property
    def _llm_type(self) -> str:
        return "bench-token-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Only reached when nothing streams (no "messages" stream mode): the
        # whole answer at once; the benchmark always streams, through _astream.
        text = "".join(token(i) for i in range(TOKENS))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i in range(TOKENS):
            await asyncio.sleep(TOKEN_INTERVAL)
            # No on_llm_new_token here: BaseChatModel calls it for every
            # chunk it takes from _astream (calling it too would send each
            # token twice to the "messages" stream mode).
            yield ChatGenerationChunk(message=AIMessageChunk(content=token(i)))


model = TokenModel()


async def chat(state: MessagesState) -> dict[str, list[BaseMessage]]:
    result = await model.ainvoke(state["messages"])
    return {"messages": [result]}


graph = (
    StateGraph(MessagesState)
    .add_node("chat", chat)
    .add_edge(START, "chat")
    .add_edge("chat", END)
    .compile()
)

"""A user's own Starlette app for langgraph.json's ``http.app``, and a graph
that answers with what its configurable holds (tests/server/test_http_section.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Tagged:
    """The user's middleware: every answer says it went through it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-custom-mw", b"1")]}
            await send(message)

        await self.app(scope, receive, tagged)


async def hello(request: Request) -> JSONResponse:
    user = getattr(request.state, "user", None)
    return JSONResponse(
        {
            "hello": "from the user's app",
            "started": request.app.state.custom_started,
            "user": user["identity"] if user else None,
        }
    )


async def info(request: Request) -> JSONResponse:
    return JSONResponse({"shadowed": "info"})


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"shadowed": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.custom_started = True
    yield


app = Starlette(
    routes=[
        Route("/custom/hello", hello),
        Route("/info", info),  # shadows the API's
        Route("/ok", ok),  # cannot: health checks stay the server's
    ],
    middleware=[Middleware(Tagged)],
    lifespan=lifespan,
)


class State(TypedDict, total=False):
    seen: dict[str, Any]


def show(state: State, config: RunnableConfig) -> dict[str, Any]:
    configurable = config.get("configurable", {})
    return {"seen": {k: v for k, v in configurable.items() if k.startswith(("x-", "user-"))}}


_show = StateGraph(State)
_show.add_node("show", show)
_show.add_edge(START, "show")
_show.add_edge("show", END)
show_config = _show.compile()

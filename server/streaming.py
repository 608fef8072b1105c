"""Responses that follow a run: SSE streams and long-polled ``/wait``.

Both read the run's events and end from the database (``pgqueue.streams``),
so any server process can serve any run, whichever worker executes it, and
a client that loses its server reconnects to another with ``Last-Event-ID``.
Event ids are the run's stored sequence numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

from pgqueue.core.live import StoredEvent
from pgqueue.resources import runs, streams
from pgqueue.resources.visibility import EVERYTHING
from server.api import to_json
from server.context import AppContext

log = logging.getLogger(__name__)


def run_headers(thread_id: UUID, run_id: UUID, *, stream: bool) -> dict[str, str]:
    base = f"/threads/{thread_id}/runs/{run_id}"
    return {
        "Location": base + ("/stream" if stream else "/join"),
        "Content-Location": base,
    }


def _wanted(name: str, modes: list[str] | None) -> bool:
    if not modes or name in ("metadata", "error"):
        return True
    mode = name.split("|", 1)[0]
    # "messages/partial" and its kin are mode "messages".
    family = mode.split("/", 1)[0]
    return mode in modes or family in modes or (mode == "messages" and "messages-tuple" in modes)


def _frame(event: StoredEvent) -> bytes:
    """The event's SSE frame, as sse-starlette's ServerSentEvent encodes it,
    without building one: JSON text has no line breaks (it escapes them),
    so the data is one line."""
    data, name = event.data, event.event
    if "\n" in data or "\r" in data or "\n" in name or "\r" in name:
        return ServerSentEvent(data=data, event=name, id=str(event.seq)).encode()
    return f"id: {event.seq}\r\nevent: {name}\r\ndata: {data}\r\n\r\n".encode()


async def _on_disconnect(context: AppContext, run_id: UUID, on_disconnect: str) -> None:
    if on_disconnect == "cancel":
        # The request that started or joined the run was authorized.
        outcomes = await runs.cancel(context.pool, [run_id], "interrupt", visible=EVERYTHING)
        log.info(
            "client went away: run %s cancelled (%s)",
            run_id,
            outcomes.get(run_id, "already ended"),
            extra={"event": "run_cancelled_on_disconnect", "run_id": str(run_id)},
        )


def _detach(context: AppContext, coro: Awaitable[Any]) -> asyncio.Future[Any]:
    """Run ``coro`` to its end even though the request that started it is
    gone (its task is being cancelled)."""
    task = asyncio.ensure_future(coro)
    context.background.add(task)
    task.add_done_callback(context.background.discard)
    return task


async def _then(
    context: AppContext, run_id: UUID, then: Callable[[], Awaitable[Any]] | None
) -> None:
    """What follows a run's end (a stateless run's thread deleted), done
    before the answer ends, as on the platform: a client that reads the
    thread next finds it gone. Shielded, so a client leaving now does not
    stop it; a failure is logged, and the scheduler's cleanup pass deletes
    the thread later."""
    if then is None:
        return
    try:
        await asyncio.shield(_detach(context, then()))
    except Exception:
        log.exception("cleanup after run %s failed", run_id, extra={"run_id": str(run_id)})


async def _close(events: AsyncGenerator[Any, None], pending: asyncio.Future[Any] | None) -> None:
    """Close a follower whose next read may still be in flight."""
    if pending is not None and not pending.done():
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending
    await events.aclose()


def sse(
    context: AppContext,
    thread_id: UUID,
    run_id: UUID,
    *,
    after: int = 0,
    modes: list[str] | None = None,
    on_disconnect: str = "continue",
    then: Callable[[], Awaitable[Any]] | None = None,
) -> Response:
    """The run's events after ``after`` as SSE, live until the run ends.
    ``then`` runs once the run ended and its events were sent, before the
    stream ends (stateless cleanup)."""

    # Set by sse-starlette when the server begins to shut down.
    shutdown = anyio.Event()

    async def frames() -> AsyncIterator[ServerSentEvent | bytes]:
        finished = closing = False
        events = streams.follow(
            context.pool,
            context.watch,
            run_id,
            after,
            poll=context.settings.join_poll_seconds,
        )
        stopping = asyncio.ensure_future(shutdown.wait())
        following: asyncio.Future[list[StoredEvent]] | None = None
        try:
            while True:
                following = asyncio.ensure_future(anext(events))
                await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not following.done():
                    # Shutting down: end the stream cleanly. The run goes
                    # on (or back to the queue); the client reconnects
                    # through Location with the last id it saw.
                    following.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await following
                    closing = True
                    yield ServerSentEvent(
                        comment="server shutting down; reconnect with Last-Event-ID"
                    )
                    return
                try:
                    batch = following.result()
                except StopAsyncIteration:
                    finished = True
                    await _then(context, run_id, then)
                    return
                # One write for the batch: fewer sends, as many frames.
                chunk = b"".join(_frame(event) for event in batch if _wanted(event.event, modes))
                if chunk:
                    yield chunk
        finally:
            # No await before the cleanup is handed off: when the client has
            # gone, this runs inside a cancelled scope where awaits fail.
            stopping.cancel()
            if not finished and not closing:
                _detach(context, _on_disconnect(context, run_id, on_disconnect))
            _detach(context, _close(events, following))

    return EventSourceResponse(
        frames(),
        ping=context.settings.keepalive_seconds,
        shutdown_event=shutdown,
        shutdown_grace_period=2,
        headers={
            **run_headers(thread_id, run_id, stream=True),
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        },
    )


def wait(
    context: AppContext,
    thread_id: UUID,
    run_id: UUID,
    *,
    on_disconnect: str = "continue",
    then: Callable[[], Awaitable[Any]] | None = None,
    status_code: int = 200,
    subscribed: streams.Subscription | None = None,
) -> Response:
    """The run's result once it ends (as join answers it). Until then a
    newline every few seconds keeps proxies from timing the request out;
    JSON parsers skip leading whitespace. ``subscribed``: the caller
    subscribed to the run's end and then found it still going (closed
    here)."""

    response: _CuttableResponse

    async def body() -> AsyncIterator[bytes]:
        finished = False
        stopping = asyncio.ensure_future(context.stopping.wait())
        try:
            ended = asyncio.ensure_future(
                streams.wait_until(
                    context.watch,
                    run_id,
                    lambda: runs.ended(context.pool, thread_id, run_id, visible=EVERYTHING),
                    context.settings.join_poll_seconds,
                    ends_only=True,
                    subscribed=subscribed,
                )
            )
            try:
                while True:
                    done, _ = await asyncio.wait(
                        {ended, stopping},
                        timeout=context.settings.keepalive_seconds,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if ended in done:
                        break
                    if stopping in done:
                        # The server is stopping: a run ending soon is still
                        # answered; otherwise the connection is cut, which
                        # langgraph-sdk answers by reconnecting through the
                        # Location header (a clean end would read as a
                        # broken result instead).
                        done, _ = await asyncio.wait(
                            {ended}, timeout=context.settings.wait_shutdown_seconds
                        )
                        if not done:
                            log.info(
                                "cutting the wait on run %s: the server is stopping; "
                                "the client reconnects through Location",
                                run_id,
                                extra={"event": "wait_cut", "run_id": str(run_id)},
                            )
                            response.cut = True
                            return
                        break
                    yield b"\n"
            finally:
                ended.cancel()
            result = ended.result().result
            finished = True
            await _then(context, run_id, then)
            yield to_json(result)
        finally:
            stopping.cancel()
            if subscribed is not None:
                subscribed.close()
            if response.cut:
                pass  # the run goes on; the client comes back for it
            elif not finished:
                _detach(context, _on_disconnect(context, run_id, on_disconnect))

    response = _CuttableResponse(
        body(),
        status_code=status_code,
        media_type="application/json",
        headers=run_headers(thread_id, run_id, stream=False),
        # Also when the body never started (the client left at once).
        background=None if subscribed is None else BackgroundTask(_unsubscribe, subscribed),
    )
    return response


async def _unsubscribe(subscribed: streams.Subscription) -> None:
    # A coroutine: Starlette would run a plain function in its thread pool,
    # one thread hop per /wait and /join for a call that takes microseconds.
    subscribed.close()


class _CuttableResponse(StreamingResponse):
    """A streamed response that can end without its final chunk: the client
    sees the connection cut (and reconnects) rather than a complete body."""

    cut = False

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            assert isinstance(chunk, bytes)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if self.cut:
            _QuietCuts.expected += 1
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _QuietCuts(logging.Filter):
    """uvicorn closes the connection of a response cut on purpose and logs
    "ASGI callable returned without completing response." as an error: for
    those it is the plan, not a fault, and the server said why already."""

    expected = 0  # cuts not yet logged by uvicorn

    def filter(self, record: logging.LogRecord) -> bool:
        if _QuietCuts.expected and record.getMessage().startswith(
            "ASGI callable returned without completing"
        ):
            _QuietCuts.expected -= 1
            return False
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietCuts())

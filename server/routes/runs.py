"""Runs on a thread: create (background, wait, stream), read, list, join,
join a stream, cancel, delete."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, field_validator
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.resources import runs
from server import streaming
from server.api import JSON, ApiError, Router, invalid, parse_body, parse_query, path_uuid
from server.auth import user_of
from server.authorization import authorize, authorize_run
from server.context import ctx
from server.pages import Limit, Offset
from server.schemas import STREAM_MODES, RunCreate
from server.webhook_check import check_webhook

router = Router("thread runs")

CREATED = {200: "The run, pending", 404: "Unknown thread or assistant", 409: "Thread busy (reject)"}


class RunList(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: Limit = 10
    offset: Offset = 0
    status: Literal["pending", "running", "success", "error", "timeout", "interrupted"] | None = (
        None
    )


class CancelQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    wait: bool = False
    action: Literal["interrupt", "rollback"] = "interrupt"


class JoinStreamQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cancel_on_disconnect: bool = False
    stream_mode: str | list[str] | None = None

    @field_validator("stream_mode")
    @classmethod
    def _drop_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        # The SDK sends stream_mode= (empty) when the caller gave none.
        if isinstance(value, list):
            value = [v for v in value if v] or None
        return value or None


async def start_run(
    request: Request, thread_id: UUID | None, *, streamed: bool = False
) -> tuple[RunCreate, dict[str, Any]]:
    """The request's run, created on the thread (None: a new one); with
    the body, whose on_disconnect and stream modes the answer needs."""
    body = await parse_body(request, RunCreate)
    await check_webhook(request, body.webhook)
    if thread_id is None and body.command is not None:
        raise ApiError(400, "command: resuming needs a thread; stateless runs cannot resume")
    context = ctx(request)
    thread_visible, assistant_visible = await authorize_run(request, body, thread_id)
    wanted = body.to_request(
        thread_id,
        streamed=streamed,
        user=user_of(request),
        headers=context.run_headers.pick(request.headers),
        thread_visible=thread_visible,
        assistant_visible=assistant_visible,
    )
    return body, await runs.create(context.pool, context.registry, wanted)


def created(run: dict[str, Any]) -> Response:
    """A background run's answer: the run, and where to read it."""
    location = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    return JSON(run, headers={"Content-Location": location})


def wait_for(request: Request, body: RunCreate, run: dict[str, Any], **kw: Any) -> Response:
    """The run's result once it ends (``kw``: what ``streaming.wait`` takes)."""
    context = ctx(request)
    return streaming.wait(
        context, run["thread_id"], run["run_id"], on_disconnect=body.on_disconnect, **kw
    )


def stream_of(request: Request, body: RunCreate, run: dict[str, Any], **kw: Any) -> Response:
    """The run's output as SSE, in the modes the body asked for."""
    context = ctx(request)
    return streaming.sse(
        context,
        run["thread_id"],
        run["run_id"],
        modes=body.stream_modes(),
        on_disconnect=body.on_disconnect,
        **kw,
    )


def _ids(thread_id: UUID, run_id: UUID) -> dict[str, Any]:
    return {"thread_id": thread_id, "run_id": run_id}


def run_path(request: Request) -> tuple[UUID, UUID]:
    return path_uuid(request, "thread_id"), path_uuid(request, "run_id")


@router.route(
    "POST",
    "/threads/{thread_id}/runs",
    summary="Create a background run",
    body=RunCreate,
    responses=CREATED,
)
async def create_background_run(request: Request) -> Response:
    _, run = await start_run(request, path_uuid(request, "thread_id"))
    return created(run)


@router.route(
    "POST",
    "/threads/{thread_id}/runs/wait",
    summary="Create a run and wait for its result",
    body=RunCreate,
    responses=CREATED,
)
async def create_and_wait(request: Request) -> Response:
    body, run = await start_run(request, path_uuid(request, "thread_id"))
    return wait_for(request, body, run)


@router.route(
    "POST",
    "/threads/{thread_id}/runs/stream",
    summary="Create a run and stream its output (SSE)",
    body=RunCreate,
    responses=CREATED,
    returns="sse",
)
async def create_and_stream(request: Request) -> Response:
    body, run = await start_run(request, path_uuid(request, "thread_id"), streamed=True)
    return stream_of(request, body, run)


@router.route(
    "GET",
    "/threads/{thread_id}/runs",
    summary="List a thread's runs, newest first",
    query=RunList,
    responses={200: "Runs", 404: "Unknown thread"},
)
async def list_runs(request: Request) -> Response:
    thread_id = path_uuid(request, "thread_id")
    query = parse_query(request, RunList)
    visible = await authorize(request, "threads", "read", {"thread_id": thread_id})
    found = await runs.list_for_thread(
        ctx(request).pool, thread_id, query.status, query.limit, query.offset, visible=visible
    )
    return JSON(found)


@router.route(
    "GET",
    "/threads/{thread_id}/runs/{run_id}",
    summary="Get a run",
    responses={200: "The run", 404: "Unknown run"},
)
async def get_run(request: Request) -> Response:
    thread_id, run_id = run_path(request)
    visible = await authorize(request, "threads", "read", _ids(thread_id, run_id))
    return JSON(await runs.get(ctx(request).pool, thread_id, run_id, visible=visible))


@router.route(
    "DELETE",
    "/threads/{thread_id}/runs/{run_id}",
    summary="Delete a run that has ended",
    responses={204: "Deleted", 404: "Unknown run", 409: "Run still pending or running"},
)
async def delete_run(request: Request) -> Response:
    thread_id, run_id = run_path(request)
    visible = await authorize(request, "threads", "delete", _ids(thread_id, run_id))
    await runs.delete(ctx(request).pool, thread_id, run_id, visible=visible)
    return Response(status_code=204)


@router.route(
    "GET",
    "/threads/{thread_id}/runs/{run_id}/join",
    summary="Wait for a run to end; its result",
    responses={200: "The run's values, interrupt or error", 404: "Unknown run"},
)
async def join_run(request: Request) -> Response:
    thread_id, run_id = run_path(request)
    context = ctx(request)
    visible = await authorize(request, "threads", "read", _ids(thread_id, run_id))
    # One read answers a run that already ended (and tells an unknown one).
    # Subscribed first, so an end between that read and the wait is seen
    # and the wait needs no read of its own until the run ends.
    subscribed = context.watch.subscribe(run_id, ends_only=True)
    try:
        done = await runs.ended(context.pool, thread_id, run_id, visible=visible)
    except BaseException:
        subscribed.close()
        raise
    if done is not None:
        subscribed.close()
        if done.status is None:
            raise ApiError(404, f"run {run_id} not found on thread {thread_id}")
        return JSON(done.result)
    return streaming.wait(context, thread_id, run_id, subscribed=subscribed)


@router.route(
    "GET",
    "/threads/{thread_id}/runs/{run_id}/stream",
    summary="Join a run's stream (SSE); Last-Event-ID replays what followed that event",
    query=JoinStreamQuery,
    responses={200: "Event stream", 404: "Unknown run"},
    returns="sse",
)
async def join_stream(request: Request) -> Response:
    thread_id, run_id = run_path(request)
    query = parse_query(request, JoinStreamQuery)
    modes = None
    if query.stream_mode is not None:
        modes = [query.stream_mode] if isinstance(query.stream_mode, str) else query.stream_mode
        unknown = [m for m in modes if m not in STREAM_MODES]
        if unknown:
            raise invalid("stream_mode", f"unknown stream mode(s) {unknown}")
    context = ctx(request)
    last_event_id = request.headers.get("last-event-id")
    after = None if last_event_id is None else _event_id(last_event_id)
    visible = await authorize(request, "threads", "read", _ids(thread_id, run_id))
    # An unknown run (or one the request may not see) answers 404.
    await runs.get(context.pool, thread_id, run_id, visible=visible)
    if after is None:
        # Without Last-Event-ID a joiner gets what happens from now on.
        after = await runs.last_event_seq(context.pool, run_id)
    return streaming.sse(
        context,
        thread_id,
        run_id,
        after=after,
        modes=modes,
        on_disconnect="cancel" if query.cancel_on_disconnect else "continue",
    )


def _event_id(header: str) -> int:
    """The event a joiner last saw: replay what followed it. ``-1`` is what
    the JS SDK's ``useStream`` sends on reconnecting after a page reload, and
    means "from the start", as on the platform."""
    value = header.strip()
    if value == "-1":
        return 0
    # isascii: str.isdigit() also takes digits int() refuses, such as "²".
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise invalid("Last-Event-ID", f"{header!r} is not an event id of this server")
    return int(value)


@router.route(
    "POST",
    "/threads/{thread_id}/runs/{run_id}/cancel",
    summary="Cancel a pending or running run (interrupt keeps its checkpoints, rollback deletes them)",
    query=CancelQuery,
    responses={202: "Cancelling", 200: "Cancelled; the run's result (wait=1)", 404: "Not live"},
)
async def cancel_run(request: Request) -> Response:
    thread_id, run_id = run_path(request)
    query = parse_query(request, CancelQuery)
    context = ctx(request)
    visible = await authorize(
        request, "threads", "update", {**_ids(thread_id, run_id), "action": query.action}
    )
    # An unknown run (or one the request may not see) answers 404.
    await runs.get(context.pool, thread_id, run_id, visible=visible)
    outcomes = await runs.cancel(context.pool, [run_id], query.action, visible=visible)
    if run_id not in outcomes:
        raise ApiError(404, f"run {run_id} is neither pending nor running; nothing to cancel")
    if query.wait:
        return streaming.wait(context, thread_id, run_id)
    return Response(status_code=202)

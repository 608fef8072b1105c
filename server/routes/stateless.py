"""Stateless runs: each gets a new thread, deleted once the run ends
(``on_completion="delete"``, the default) or kept (``"keep"``). Also batch
creation and cancelling many runs at once."""

from __future__ import annotations

import asyncio
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.resources import runs, streams
from server.api import JSON, ApiError, Router, parse_body, parse_query, read_json, validate
from server.auth import user_of
from server.authorization import authorize, authorize_run
from server.context import AppContext, ctx
from server.errors import REFUSALS, as_api_error
from server.routes.runs import CREATED, created, start_run, stream_of, wait_for
from server.schemas import RunCreate
from server.webhook_check import check_webhook

router = Router("stateless runs")

MAX_BATCH = 1000


class BatchRun(RunCreate):
    thread_id: UUID | None = None


class BatchBody(BaseModel):
    """For the spec only: the batch body is a JSON array of runs."""

    runs: list[BatchRun]


class CancelMany(BaseModel):
    model_config = ConfigDict(extra="ignore")
    thread_id: UUID | None = None
    run_ids: list[UUID] | None = Field(default=None, max_length=MAX_BATCH)
    status: Literal["pending", "running", "all"] | None = None


class CancelManyQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: Literal["interrupt", "rollback"] = "interrupt"


def _cleanup(context: AppContext, run: dict[str, Any], on_completion: str) -> Any:
    """What to do once a stateless run ended: delete its thread, or nothing."""
    if on_completion != "delete":
        return None

    async def delete_thread() -> None:
        await runs.delete_temporary_thread(context.pool, run["thread_id"])

    return delete_thread


def _delete_when_done(context: AppContext, run: dict[str, Any], on_completion: str) -> None:
    """A background stateless run: this process deletes its thread once it
    ends (nobody is waiting on the request)."""
    cleanup = _cleanup(context, run, on_completion)
    if cleanup is None:
        return

    async def watch() -> None:
        await streams.wait_for_end(
            context.pool, context.watch, run["run_id"], context.settings.join_poll_seconds
        )
        await cleanup()

    task = asyncio.ensure_future(watch())
    context.background.add(task)
    task.add_done_callback(context.background.discard)


@router.route(
    "POST", "/runs", summary="Create a background run on a new thread", body=RunCreate,
    responses=CREATED,
)  # fmt: skip
async def create_stateless(request: Request) -> Response:
    body, run = await start_run(request, None)
    _delete_when_done(ctx(request), run, body.on_completion)
    return created(run)


@router.route(
    "POST", "/runs/wait", summary="Run on a new thread and wait for the result", body=RunCreate,
    responses=CREATED,
)  # fmt: skip
async def wait_stateless(request: Request) -> Response:
    body, run = await start_run(request, None)
    return wait_for(request, body, run, then=_cleanup(ctx(request), run, body.on_completion))


@router.route(
    "POST", "/runs/stream", summary="Run on a new thread and stream its output (SSE)",
    body=RunCreate, responses=CREATED, returns="sse",
)  # fmt: skip
async def stream_stateless(request: Request) -> Response:
    body, run = await start_run(request, None, streamed=True)
    return stream_of(request, body, run, then=_cleanup(ctx(request), run, body.on_completion))


@router.route(
    "POST", "/runs/batch", summary="Create many background runs (a JSON array of runs)",
    body=BatchBody, responses=CREATED,
)  # fmt: skip
async def create_batch(request: Request) -> Response:
    context = ctx(request)
    data = await read_json(request, context.settings.max_body_bytes)
    if isinstance(data, dict) and "runs" in data:
        data = data["runs"]
    if not isinstance(data, list) or not data or len(data) > MAX_BATCH:
        raise ApiError(
            422,
            f"body: expected a JSON array of 1 to {MAX_BATCH} runs",
            [{"field": "body", "message": f"expected a JSON array of 1 to {MAX_BATCH} runs"}],
        )
    items = [_batch_item(item, index) for index, item in enumerate(data)]
    for index, item in enumerate(items):
        await check_webhook(request, item.webhook, f"body.{index}.webhook")
    reach = [await authorize_run(request, item, item.thread_id) for item in items]
    created = []
    # All or nothing: one transaction, so a bad item leaves no runs behind.
    async with context.pool.acquire() as conn, conn.transaction():
        for index, (item, (thread_visible, assistant_visible)) in enumerate(
            zip(items, reach, strict=True)
        ):
            try:
                created.append(
                    await runs.create(
                        conn,
                        context.registry,
                        item.to_request(
                            item.thread_id,
                            user=user_of(request),
                            headers=context.run_headers.pick(request.headers),
                            thread_visible=thread_visible,
                            assistant_visible=assistant_visible,
                        ),
                    )
                )
            except tuple(REFUSALS) as exc:
                # The detail names the item the library refused.
                error = as_api_error(exc)
                error.detail = f"body.{index}: {error.detail}"
                raise error from None
    for item, run in zip(items, created, strict=True):
        if item.thread_id is None:
            _delete_when_done(context, run, item.on_completion)
    return JSON(created)


def _batch_item(data: Any, index: int) -> BatchRun:
    item = validate(BatchRun, data, f"body.{index}")
    if item.thread_id is None and item.command is not None:
        raise ApiError(400, f"body.{index}.command: resuming needs a thread")
    return item


@router.route(
    "POST", "/runs/cancel", summary="Cancel runs by id, or every live run of a thread",
    body=CancelMany, query=CancelManyQuery, responses={204: "Cancelled or cancelling"},
)  # fmt: skip
async def cancel_many(request: Request) -> Response:
    body = await parse_body(request, CancelMany)
    query = parse_query(request, CancelManyQuery)
    if body.run_ids is None and body.thread_id is None and body.status is None:
        raise ApiError(422, "body: give run_ids, thread_id or status (all live runs)")
    statuses: list[str] | None = None if body.status in (None, "all") else [str(body.status)]
    # Only runs on threads the request may update are cancelled; others
    # are left alone, as if they were not live.
    visible = await authorize(
        request,
        "threads",
        "update",
        {"thread_id": body.thread_id, "run_ids": body.run_ids, "action": query.action},
    )
    await runs.cancel(
        ctx(request).pool,
        list(body.run_ids) if body.run_ids is not None else None,
        query.action,
        thread_id=body.thread_id,
        statuses=statuses,
        visible=visible,
    )
    return Response(status_code=204)

"""Crons: ``POST /runs/crons`` (a new thread per tick),
``POST /threads/{thread_id}/runs/crons``, ``PATCH`` and ``DELETE
/runs/crons/{cron_id}``, ``POST /runs/crons/search`` and ``/count``.

A cron's run request is validated by the same model as any run request
(``RunCreate``), once when the cron is created or changed and again at each
tick (``cron_run_request``, which the scheduler calls), so a cron never
stores a run the runs API would refuse.

Each handler asks the Auth first (``server.authorization``) with the value
the SDK's ``Auth.types.Crons*`` describes, and works from that value (a
handler may stamp an owner in ``metadata``), validated again. Creating a
cron also asks what its runs may reach, as for a run (``authorize_run``):
``threads.create_run`` (its thread, or none for a stateless cron) and
``assistants.read`` for a user-made assistant. Its ticks then run as
created, unasked: the scheduler has no request to ask about.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from pgqueue.errors import Invalid, NotFound
from pgqueue.execution.graphs import system_assistant_id
from pgqueue.resources import crons, runs
from pgqueue.resources.runs import RunRequest
from pgqueue.resources.visibility import EVERYTHING, Visible
from server.api import JSON, Router, invalid, no_content, parse_body, path_uuid, validate
from server.auth import user_of
from server.authorization import authorize, authorize_run, rewrites
from server.context import ctx
from server.cron_schemas import Cron, CronCount, CronCreate, CronPatch, CronSearch
from server.schemas import RunCreate
from server.webhook_check import check_webhook

router = Router("crons")


def cron_run_request(
    payload: dict[str, Any],
    assistant_id: UUID,
    thread_id: UUID | None,
    user: dict[str, Any] | None = None,
) -> RunRequest:
    """The scheduler's view of a stored payload: validated as a run request
    (raises if it no longer is one), for the cron's resolved assistant, run
    as the user who created the cron."""
    body = RunCreate.model_validate({**payload, "assistant_id": str(assistant_id)})
    # The cron's creation was authorized (its thread, its assistant); a tick
    # has no request to ask about, so it reaches what the cron names.
    return body.to_request(
        thread_id, user=user, thread_visible=EVERYTHING, assistant_visible=EVERYTHING
    )


async def _authorized(
    request: Request, body: CronCreate, thread_id: UUID | None
) -> tuple[CronCreate, Visible, Visible]:
    """The cron as the crons.create handler left it (validated again, if a
    handler ran), and
    what its runs may reach: its thread and assistant, asked as for a run
    (``authorize_run``: threads.create_run, assistants.read for a
    user-made assistant). Its metadata is its runs' too (the payload
    carries it), so it travels in ``metadata``, not in ``payload``."""
    user = user_of(request)
    payload = body.payload(stateless=thread_id is None)
    sent_metadata = payload.pop("metadata", None) is not None
    value: dict[str, Any] = {
        "payload": payload,
        "schedule": body.schedule,
        "cron_id": None,
        "thread_id": thread_id,
        "user_id": user["identity"] if user else None,
        "end_time": body.end_time,
        "metadata": dict(body.metadata or {}),
    }
    await authorize(request, "crons", "create", value)
    if rewrites(request, "crons", "create"):
        checked = {**(value.get("payload") or {}), "schedule": value.get("schedule")}
        checked["end_time"] = value.get("end_time")
        if value.get("metadata") or sent_metadata:
            checked["metadata"] = value.get("metadata") or {}
        body = validate(CronCreate, checked, "body")
    thread_visible, assistant_visible = await authorize_run(request, body, thread_id)
    return body, thread_visible, assistant_visible


async def _create(request: Request, thread_id: UUID | None) -> Response:
    context = ctx(request)
    user = user_of(request)
    body = await parse_body(request, CronCreate)
    await check_webhook(request, body.webhook)
    body.refuse_conflicts()
    if thread_id is None and body.command is not None:
        raise invalid("command", "a cron without a thread has no interrupted run to resume")
    sent = body
    body, thread_visible, assistant_visible = await _authorized(request, body, thread_id)
    if body.webhook != sent.webhook:  # the handler's webhook must pass as the client's
        await check_webhook(request, body.webhook)
    body.refuse_conflicts()
    try:
        assistant = await runs.resolve_assistant(
            context.pool, context.registry, body.assistant_id, visible=assistant_visible
        )
    except Invalid as exc:
        # The platform answers an unknown assistant on a cron 404, where a
        # run gets 422.
        raise NotFound(f"assistant {body.assistant_id!r} not found: {exc.problem}") from None
    cron = await crons.create(
        context.pool,
        crons.NewCron(
            assistant_id=assistant["assistant_id"],
            thread_id=thread_id,
            schedule=body.schedule,
            payload=body.payload(stateless=thread_id is None),
            metadata=body.metadata or {},
            end_time=body.end_time,
            user_id=user["identity"] if user else None,
            auth_user=user,
        ),
        thread_visible=thread_visible,
    )
    return JSON(cron)


@router.route(
    "POST",
    "/runs/crons",
    summary="Create a cron whose every tick runs on a new thread",
    body=CronCreate,
    returns=Cron,
)
async def create_cron(request: Request) -> Response:
    return await _create(request, None)


@router.route(
    "POST",
    "/threads/{thread_id}/runs/crons",
    summary="Create a cron whose ticks run on this thread",
    body=CronCreate,
    returns=Cron,
)
async def create_thread_cron(request: Request) -> Response:
    return await _create(request, path_uuid(request, "thread_id"))


@router.route(
    "PATCH",
    "/runs/crons/{cron_id}",
    summary="Change a cron's schedule, end time or run",
    body=CronPatch,
    returns=Cron,
)
async def update_cron(request: Request) -> Response:
    cron_id = path_uuid(request, "cron_id")
    body = await parse_body(request, CronPatch)
    await check_webhook(request, body.webhook)
    changes = body.model_dump(
        mode="json", exclude_unset=True, exclude={"schedule", "end_time", "on_run_completed"}
    )
    changes = {k: v for k, v in changes.items() if v is not None}
    if body.on_run_completed is not None:
        changes["on_completion"] = body.on_run_completed
    # Metadata travels beside the payload, as on create: a handler stamps
    # it there. Sent, it replaces the cron's; added by the handler to a
    # PATCH that sent none, it merges into the cron's.
    sent_metadata = changes.pop("metadata", None)
    value: dict[str, Any] = {"cron_id": cron_id, "payload": changes, "schedule": body.schedule}
    if sent_metadata is not None:
        value["metadata"] = sent_metadata
    visible = await authorize(request, "crons", "update", value)
    changes = dict(value.get("payload") or {})
    schedule = value.get("schedule")
    metadata = value.get("metadata")
    add_metadata = None
    if sent_metadata is not None:
        changes["metadata"] = metadata or {}
    elif metadata:
        add_metadata = metadata
    if changes.get("webhook") != body.webhook:  # the handler's must pass as the client's
        await check_webhook(request, changes.get("webhook"))

    def check(payload: dict[str, Any], schedule: str) -> dict[str, Any]:
        # The merged run request must still be one the runs API accepts.
        validate(CronCreate, {**payload, "schedule": schedule}, "body").refuse_conflicts()
        return payload

    end_time: Any = body.end_time if "end_time" in body.model_fields_set else crons.KEEP
    cron = await crons.update(
        ctx(request).pool,
        cron_id,
        changes=changes,
        schedule=schedule,
        end_time=end_time,
        check=check,
        add_metadata=add_metadata,
        visible=visible,
    )
    return JSON(cron)


@router.route(
    "DELETE",
    "/runs/crons/{cron_id}",
    summary="Delete a cron",
    responses={204: "Deleted"},
)
async def delete_cron(request: Request) -> Response:
    cron_id = path_uuid(request, "cron_id")
    visible = await authorize(request, "crons", "delete", {"cron_id": cron_id})
    await crons.delete(ctx(request).pool, cron_id, visible=visible)
    return no_content()


def _where(request: Request, body: CronSearch | CronCount) -> dict[str, Any] | None:
    """What search and count filter on, as ``crons.search``/``count`` take
    it; None when nothing can match. The assistant may be a graph id (its
    system assistant); any other non-UUID matches nothing."""
    assistant: UUID | None = None
    if body.assistant_id in ctx(request).registry.specs:
        assistant = system_assistant_id(str(body.assistant_id))
    elif body.assistant_id is not None:
        try:
            assistant = UUID(body.assistant_id)
        except ValueError:
            return None
    return {"assistant_id": assistant, "thread_id": body.thread_id, "metadata": body.metadata}


@router.route(
    "POST",
    "/runs/crons/search",
    summary="List crons, filtered by assistant, thread, metadata or enabled",
    body=CronSearch,
)
async def search_crons(request: Request) -> Response:
    body = await parse_body(request, CronSearch)
    where = _where(request, body)
    # The value (the SDK's CronsSearch) is for the handler to judge: what it
    # returns scopes the search, as with threads and runs.
    value = {
        "assistant_id": where["assistant_id"] if where else None,
        "thread_id": body.thread_id,
        "limit": body.limit,
        "offset": body.offset,
    }
    visible = await authorize(request, "crons", "search", value)
    if where is None:
        return JSON([])
    found = await crons.search(
        ctx(request).pool,
        **where,
        enabled=body.enabled,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
        limit=body.limit,
        offset=body.offset,
        visible=visible,
    )
    if body.select:
        fields = set(body.select)
        found = [{k: v for k, v in cron.items() if k in fields} for cron in found]
    return JSON(found)


@router.route(
    "POST",
    "/runs/crons/count",
    summary="Count crons, filtered by assistant, thread or metadata",
    body=CronCount,
)
async def count_crons(request: Request) -> Response:
    body = await parse_body(request, CronCount)
    where = _where(request, body)
    value = {"assistant_id": where["assistant_id"] if where else None, "thread_id": body.thread_id}
    visible = await authorize(request, "crons", "search", value)
    if where is None:
        return JSON(0)
    return JSON(await crons.count(ctx(request).pool, **where, visible=visible))

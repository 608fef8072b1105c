"""Crons: ``POST /runs/crons`` (a new thread per tick),
``POST /threads/{thread_id}/runs/crons``, ``PATCH`` and ``DELETE
/runs/crons/{cron_id}``, ``POST /runs/crons/search`` and ``/count``.

A cron's run request is validated by the same model as any run request
(``RunCreate``), once when the cron is created or changed and again at each
tick (``cron_run_request``, which the scheduler calls), so a cron never
stores a run the runs API would refuse.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.errors import Invalid, NotFound
from pgqueue.execution.graphs import system_assistant_id
from pgqueue.resources import crons, runs
from pgqueue.resources.runs import RunRequest
from server.api import JSON, Router, invalid, no_content, parse_body, path_uuid, validate
from server.auth import user_of
from server.context import ctx
from server.pages import Limit, Offset
from server.schemas import RunConfig, RunCreate
from server.webhook_check import check_webhook

router = Router("crons")

CronSortBy = Literal[
    "cron_id", "assistant_id", "thread_id", "created_at", "updated_at", "next_run_date", "end_time"
]
CronField = Literal[
    "cron_id",
    "assistant_id",
    "thread_id",
    "on_run_completed",
    "end_time",
    "schedule",
    "timezone",
    "created_at",
    "updated_at",
    "payload",
    "user_id",
    "next_run_date",
    "metadata",
    "enabled",
    "now",
]
# CronCreate fields that describe the cron, not its run: kept out of the payload.
CRON_ONLY = {"schedule", "end_time", "on_run_completed"}


def _refuse(problem: str) -> PydanticCustomError:
    # A custom error: the message reads as written, without "Value error, ".
    return PydanticCustomError("invalid_cron", "{problem}", {"problem": problem})


def _schedule(value: str) -> str:
    try:
        return crons.check_schedule(value)
    except Invalid as exc:
        raise _refuse(exc.problem) from None


def _timezone(value: str) -> str:
    try:
        crons.zone(value)
    except Invalid as exc:
        raise _refuse(exc.problem) from None
    return value


def _future(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    value = crons.aware(value)
    try:
        value.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC.
        raise _refuse(f"{value.isoformat()} is out of range once in UTC") from None
    if value <= datetime.now(UTC):
        raise _refuse(f"{value.isoformat()} is in the past; a cron ends in the future")
    return value


Schedule = Annotated[str, Field(max_length=200), AfterValidator(_schedule)]
Timezone = Annotated[str, Field(max_length=100), AfterValidator(_timezone)]
EndTime = Annotated[datetime, AfterValidator(_future)]


class CronCreate(RunCreate):
    """A cron: when to run (``schedule`` in UTC unless ``timezone``, until
    ``end_time``) and, as for any run, what to run."""

    schedule: Schedule
    end_time: EndTime | None = None
    enabled: bool | None = None
    timezone: Timezone | None = None
    # Stateless crons: delete (default) or keep each tick's thread after its run.
    on_run_completed: Literal["delete", "keep"] | None = None

    def payload(self, stateless: bool) -> dict[str, Any]:
        """The run request as stored: what the client sent, minus the cron's
        own fields (``enabled`` and ``timezone`` stay; see pgqueue.crons)."""
        data = self.model_dump(
            mode="json", exclude_unset=True, exclude_none=True, exclude=CRON_ONLY
        )
        if stateless and self.on_run_completed:
            data["on_completion"] = self.on_run_completed
        if not stateless:
            data.pop("on_completion", None)
        return data


class CronPatch(BaseModel):
    """Fields to change; the rest stay. ``end_time: null`` clears the end."""

    model_config = ConfigDict(extra="ignore")

    schedule: Schedule | None = None
    end_time: EndTime | None = None
    enabled: bool | None = None
    timezone: Timezone | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    input: dict[str, Any] | list[Any] | str | int | float | bool | None = None
    metadata: dict[str, Any] | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # An assistant UUID or a graph id (its system assistant).
    assistant_id: str | None = Field(default=None, max_length=200)
    thread_id: UUID | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: CronSortBy = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[CronField] | None = None


class CronCount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    assistant_id: str | None = Field(default=None, max_length=200)
    thread_id: UUID | None = None
    metadata: dict[str, Any] | None = None


class Cron(BaseModel):
    """A cron as the API answers it (the SDK's ``Cron``)."""

    cron_id: UUID
    assistant_id: UUID
    thread_id: UUID | None
    on_run_completed: Literal["delete", "keep"] | None
    end_time: datetime | None
    schedule: str
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]
    user_id: str | None
    next_run_date: datetime | None
    metadata: dict[str, Any]
    enabled: bool


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
    return body.to_request(thread_id, user=user)


async def _create(request: Request, thread_id: UUID | None) -> Response:
    context = ctx(request)
    user = user_of(request)
    body = await parse_body(request, CronCreate)
    await check_webhook(request, body.webhook)
    body.refuse_conflicts()
    if thread_id is None and body.command is not None:
        raise invalid("command", "a cron without a thread has no interrupted run to resume")
    try:
        assistant = await runs.resolve_assistant(context.pool, context.registry, body.assistant_id)
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

    def check(payload: dict[str, Any], schedule: str) -> dict[str, Any]:
        # The merged run request must still be one the runs API accepts.
        validate(CronCreate, {**payload, "schedule": schedule}, "body").refuse_conflicts()
        return payload

    end_time: Any = body.end_time if "end_time" in body.model_fields_set else crons.KEEP
    cron = await crons.update(
        ctx(request).pool,
        cron_id,
        changes=changes,
        schedule=body.schedule,
        end_time=end_time,
        check=check,
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
    await crons.delete(ctx(request).pool, cron_id)
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
    if where is None:
        return JSON(0)
    return JSON(await crons.count(ctx(request).pool, **where))

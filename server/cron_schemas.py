"""The bodies of the crons API (``server.routes.crons``) and the cron it
answers: a cron's run request is a ``RunCreate``, and a cron adds when to
run it. Validation here is what only the shape and a schedule can tell;
the routes check what needs the database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from pgqueue.errors import Invalid
from pgqueue.resources import crons
from server.pages import Limit, Offset
from server.schemas import RunConfig, RunCreate

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

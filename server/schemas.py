"""Request models shared by several route modules: what a run request may
carry (thread runs, stateless runs, batches and crons all take it)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)
from pydantic_core import PydanticCustomError

from pgqueue.resources.runs import RunRequest
from pgqueue.resources.visibility import Visible
from server.api import ApiError

# What the SDK may ask for, and the LangGraph stream mode that produces it.
STREAM_MODES = {
    "values": "values",
    "updates": "updates",
    "messages": "messages",
    "messages-tuple": "messages",
    "custom": "custom",
    "debug": "debug",
    "tasks": "tasks",
    "checkpoints": "checkpoints",
    # LangChain's callback events (astream_events v2), the platform's mode.
    "events": "events",
}

MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]


def with_headers(config: dict[str, Any], headers: dict[str, str] | None) -> dict[str, Any]:
    """The run's config with request headers in its configurable; a header
    wins over a configurable key of the same name, as on the platform."""
    if not headers:
        return config
    return {**config, "configurable": {**(config.get("configurable") or {}), **headers}}


def with_user(config: dict[str, Any], user: dict[str, Any] | None) -> dict[str, Any]:
    """The run's config with the authenticated user in its configurable (as
    the platform passes it: langgraph_auth_user, _user_id, _permissions)."""
    if user is None:
        return config
    return {
        **config,
        "configurable": {
            **(config.get("configurable") or {}),
            "langgraph_auth_user": user,
            "langgraph_auth_user_id": user["identity"],
            "langgraph_auth_permissions": user["permissions"],
        },
    }


def _config(value: dict[str, Any]) -> dict[str, Any]:
    """A RunnableConfig's ``configurable`` and ``metadata`` get the server's
    own keys merged in (assistant and graph ids, run id): each must be an
    object; null reads as absent."""
    for key in ("configurable", "metadata"):
        if key in value and value[key] is None:
            value = {k: v for k, v in value.items() if k != key}
        elif key in value and not isinstance(value[key], dict):
            raise PydanticCustomError(
                "invalid_config",
                "{key} must be an object, got {kind}",
                {"key": key, "kind": type(value[key]).__name__},
            )
    return value


# A run's (or an assistant's) ``config``.
RunConfig = Annotated[dict[str, Any], AfterValidator(_config)]


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resume: Any = None
    update: Any = None
    goto: Any = None


class RunCreate(BaseModel):
    """A run request (``POST /threads/{id}/runs`` and friends)."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str = Field(min_length=1, max_length=200)
    input: dict[str, Any] | list[Any] | str | int | float | bool | None = None
    command: Command | None = None
    config: RunConfig | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: str | list[str] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    checkpoint_id: str | None = Field(default=None, max_length=200)
    checkpoint: dict[str, Any] | None = None
    webhook: str | None = Field(default=None, max_length=2000)
    multitask_strategy: MultitaskStrategy = "enqueue"
    if_not_exists: Literal["reject", "create"] = "reject"
    after_seconds: float = Field(default=0, ge=0, le=366 * 24 * 3600)
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    durability: Literal["sync", "async", "exit"] | None = None
    # Older SDKs: checkpoint_during=False meant durability "exit".
    checkpoint_during: bool | None = None

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: str | list[str]) -> str | list[str]:
        modes = [value] if isinstance(value, str) else value
        unknown = [m for m in modes if m not in STREAM_MODES]
        if unknown:
            raise ValueError(
                f"unknown stream mode(s) {unknown}; choose from {sorted(STREAM_MODES)}"
            )
        return value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def stream_modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(self.stream_mode)

    def refuse_conflicts(self) -> None:
        """Well-formed fields that cannot go together: 400, as on the platform."""
        if self.context and (self.config or {}).get("configurable"):
            raise ApiError(
                400,
                "context: give either config.configurable or context, not both (context "
                "replaces configurable for graphs with a context schema)",
            )

    def to_request(
        self,
        thread_id: Any,
        *,
        streamed: bool = False,
        user: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        thread_visible: Visible,
        assistant_visible: Visible,
    ) -> RunRequest:
        """The queue's view of this request; ``thread_id`` None is stateless.
        ``streamed``: the request streams the run's events as they come.
        ``user``: who asked (auth), passed to the graph in its configurable.
        ``headers``: request headers for the configurable too (the http
        section's configurable_headers picked them). ``thread_visible`` and
        ``assistant_visible``: what the request may reach
        (``server.authorization.authorize_run``)."""
        self.refuse_conflicts()
        # The executor runs LangGraph's stream modes; the SDK's
        # "messages-tuple" is LangGraph's "messages".
        modes = list(dict.fromkeys(STREAM_MODES[m] for m in self.stream_modes()))
        durability = self.durability
        if durability is None and self.checkpoint_during is False:
            durability = "exit"
        checkpoint_id = self.checkpoint_id or (self.checkpoint or {}).get("checkpoint_id")
        kwargs: dict[str, Any] = {
            "input": self.input,
            "command": self.command.model_dump(exclude_none=True) if self.command else None,
            "config": with_user(with_headers(self.config or {}, headers), user),
            "context": self.context,
            "stream_mode": modes,
            # Somebody follows the events as they come: they are written
            # sooner (see ExecutorConfig.event_flush_delay).
            "live_stream": streamed or bool(self.stream_resumable),
            # The platform's messages/metadata|partial|complete events for
            # "messages"; "messages-tuple" (also asked) wins, as there.
            "split_messages": "messages" in self.stream_modes()
            and "messages-tuple" not in self.stream_modes(),
            "stream_subgraphs": self.stream_subgraphs,
            "stream_resumable": self.stream_resumable,
            "interrupt_before": self.interrupt_before,
            "interrupt_after": self.interrupt_after,
            "checkpoint_id": checkpoint_id,
            "webhook": self.webhook,
            "durability": durability,
            "on_disconnect": self.on_disconnect,
        }
        return RunRequest(
            assistant=self.assistant_id,
            thread_id=thread_id,
            kwargs={k: v for k, v in kwargs.items() if v is not None},
            metadata=self.metadata or {},
            multitask_strategy=self.multitask_strategy,
            if_not_exists=self.if_not_exists,
            after_seconds=self.after_seconds,
            on_completion=self.on_completion,
            thread_visible=thread_visible,
            assistant_visible=assistant_visible,
        )

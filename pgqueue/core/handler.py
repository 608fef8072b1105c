"""The handler contract: where a worker and the work it runs meet.

A worker claims runs and hands each to its handler; it knows nothing else
about the work. The LangGraph executor is one handler; any
``async def handler(run: ClaimedRun) -> output`` is another. What the worker
may ask of a handler is written down here, so neither side reaches into the
other with ``getattr``:

- ``__call__(run)``: do the run's work. The return value is the run's output
  (JSON), written fenced by the worker, unless it is ``Finished``: then the
  handler has written the outcome itself. An exception fails the run
  (retried if the worker's ``is_retriable`` says so).
- ``handles_cancel``: True if the handler finishes cancels itself, fenced:
  a run claimed with ``cancel_action`` set, and a ``CancelledError`` caused by
  a user's cancel while it runs. False: the worker ends such a run
  'interrupted' (or deletes it, for a rollback) without calling or waiting
  for the handler.
- ``aclose()``: release what the handler owns (connections); the worker
  calls it once no run is executing any more.

A plain async function has no resources and leaves cancels to the worker:
``as_handler`` wraps it in ``FunctionHandler``, so it keeps working as is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pgqueue.core.queue import ClaimedRun

# What a bare handler is: ``async def handler(run) -> output``.
HandlerFunction = Callable[[ClaimedRun], Awaitable[Any]]


@runtime_checkable
class Handler(Protocol):
    """The full contract a worker runs (see the module doc). A class
    implements it by shape; it need not inherit from anything."""

    @property
    def handles_cancel(self) -> bool: ...

    # Positional-only: a handler may name its parameter as it likes.
    def __call__(self, run: ClaimedRun, /) -> Awaitable[Any]: ...

    async def aclose(self) -> None: ...


class FunctionHandler:
    """A bare async function as a ``Handler``: the worker finishes its
    cancels, and it owns nothing to close."""

    handles_cancel = False

    def __init__(self, function: HandlerFunction) -> None:
        self.function = function

    def __call__(self, run: ClaimedRun, /) -> Awaitable[Any]:
        # The function's own awaitable, not a wrapping coroutine: no extra
        # frame per run on the worker's hot path.
        return self.function(run)

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"FunctionHandler({self.function!r})"


def as_handler(work: Handler | HandlerFunction) -> Handler:
    """``work`` itself if it implements the whole contract, else ``work``
    taken as a bare function. An object with only part of the contract
    (``aclose`` but no ``handles_cancel``, say) is refused rather than
    silently run without it."""
    if isinstance(work, Handler):
        return work
    partial = [name for name in ("handles_cancel", "aclose") if hasattr(work, name)]
    if partial:
        raise TypeError(
            f"{work!r} has {', '.join(partial)} but not the whole Handler contract "
            "(__call__, handles_cancel, aclose); implement all of it, or none"
        )
    if not callable(work):
        raise TypeError(f"a handler must be callable, got {work!r}")
    return FunctionHandler(work)


@dataclass(frozen=True)
class Finished:
    """Returned by a handler that wrote its run's outcome itself (fenced, in
    its own transaction, e.g. with the run's last checkpoint): the worker then
    writes nothing. ``status`` is None when the lease was lost instead."""

    status: str | None


# Set by the worker for the task that runs one handler call.
_finishing: ContextVar[Callable[[], None] | None] = ContextVar("pgqueue_finishing", default=None)


def on_finishing(mark: Callable[[], None]) -> None:
    """Worker side of ``finishing``: ``mark`` is called when the handler
    running in the current task announces its own final write."""
    _finishing.set(mark)


def finishing() -> None:
    """Tell the worker that this handler is about to write its run's outcome
    itself (it will return ``Finished``). From here on the worker does not
    cancel the handler: not for a cancel request, a hurried shutdown, or a
    heartbeat that no longer finds the lease -- a beat taken just after that
    write commits sees the run ended, not taken away. The write is fenced, so
    a lease really lost still writes nothing (and ``Finished(None)`` says so).
    Outside a worker this does nothing."""
    mark = _finishing.get()
    if mark is not None:
        mark()

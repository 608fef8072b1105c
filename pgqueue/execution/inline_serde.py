"""(De)serialization on the event loop's thread, for the fenced saver only.

The parent saver (``langgraph.checkpoint.postgres.aio``) (de)serializes
checkpoints, blobs and writes through ``asyncio.to_thread``. The serializer
holds the GIL while it works, so the thread buys no parallelism, only a
hand-off and a wake-up of the event loop per call, about 80 us of CPU each
here, four per run of a one-node graph (about 4% of a run's worker CPU).

The parent module looks ``to_thread`` up on its own ``asyncio`` global at
each call, so that global is replaced, once, by a stand-in that runs the
function inline while the calling task is inside ``inline_serde()`` and
hands it to a thread as before otherwise: any other saver in the process
(the server's plain ``AsyncPostgresSaver``) keeps its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import langgraph.checkpoint.postgres.aio as saver_module

# True while this task is inside a FencedPostgresSaver call: the parent's
# asyncio.to_thread then runs its (de)serializing function inline. A context
# variable, not a flag on the saver: the parent module is shared by every
# saver in the process, and each task must see only its own.
_inline: ContextVar[bool] = ContextVar("pgqueue_inline_serde", default=False)


class _SaverAsyncio(types.ModuleType):
    """``asyncio`` as the parent's module sees it: the real one, except that
    ``to_thread`` runs inline inside ``inline_serde()``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        if _inline.get():
            return func(*args, **kwargs)
        return await asyncio.to_thread(func, *args, **kwargs)


if saver_module.asyncio is asyncio:  # once, however often this is imported
    saver_module.asyncio = _SaverAsyncio("asyncio")  # type: ignore[attr-defined]


@contextlib.contextmanager
def inline_serde() -> Iterator[None]:
    """Within: the parent saver's (de)serializing runs inline in this task."""
    token = _inline.set(True)
    try:
        yield
    finally:
        _inline.reset(token)

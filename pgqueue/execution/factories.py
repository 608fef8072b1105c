"""Graph factories, called as the LangGraph platform calls them.

A ``langgraph.json`` graph entry may name a function that makes the graph
instead of the graph itself. The platform inspects its signature once, at
load, and then calls it every time it needs the graph: for each run, and
for each schema, drawing or state read. So does pgqueue. It may take:

- nothing: ``def make()``;
- the config: ``def make(config: RunnableConfig)`` (any one parameter not
  annotated as a runtime);
- a ``langgraph_sdk.runtime.ServerRuntime``: ``def make(runtime:
  ServerRuntime)``, which carries the user, the store and why the graph is
  wanted (``access_context``: ``threads.create_run`` for a run,
  ``threads.read`` / ``threads.update`` for state, ``assistants.read`` for
  schemas and drawings); for a run, ``runtime.execution_runtime.context`` is
  the run's context;
- both, in either order (the runtime one told apart by its annotation).

It may return a graph (a ``StateGraph`` is compiled), a coroutine (an
``async def`` factory), or a context manager, async or not, entered while
the graph is in use and left afterwards: for a run, around its execution.

For a run the config is the run's own (its ``configurable`` holds
``thread_id``, ``graph_id``, ``assistant_id`` and, with auth, the user as
``langgraph_auth_user``/``_user_id``/``_permissions``). Elsewhere it is what
the platform passes there: the assistant's config, or the thread's state
config, with the requesting user merged in.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast, get_args, get_origin

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.runtime import AccessContext, ServerRuntime, _ExecutionRuntime, _ReadRuntime

from pgqueue.errors import ConfigError

RUN: AccessContext = "threads.create_run"

# The authenticated user of the HTTP request being served (the auth
# middleware's dict), for factories called outside a run: the platform
# hands them the requesting user as well. A run's user travels in its config.
request_user: ContextVar[dict[str, Any] | None] = ContextVar("pgqueue_request_user", default=None)

# Names a factory's annotations may use without importing them (the
# platform resolves the same ones, e.g. for imports under TYPE_CHECKING).
_LOCALNS = {"ServerRuntime": ServerRuntime, "RunnableConfig": RunnableConfig}


class User(dict[str, Any]):
    """A user as graph code receives it: the dict the server stores with a
    run (identity, permissions, display_name, ...) that also answers
    ``langgraph_sdk.auth.types.BaseUser``'s attributes, as the platform's
    user object does, so both ``user["identity"]`` and ``user.identity``
    work."""

    @property
    def identity(self) -> str:
        return str(self["identity"])

    @property
    def display_name(self) -> str:
        return str(self.get("display_name") or self["identity"])

    @property
    def is_authenticated(self) -> bool:
        return bool(self.get("is_authenticated", True))

    @property
    def permissions(self) -> list[str]:
        return list(self.get("permissions") or [])

    def __getattr__(self, name: str) -> Any:
        # Other fields the authenticate handler returned (email, org, ...).
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def as_user(value: Any) -> User | None:
    if isinstance(value, User):
        return value
    if isinstance(value, dict) and isinstance(value.get("identity"), str):
        return User(value)
    if isinstance(value, str) and value:
        return User(identity=value)
    return None


@dataclass(frozen=True)
class GraphFactory:
    """A function that makes a graph, with how to call it."""

    graph_id: str
    spec: str
    fn: Callable[..., Any]
    # The parameters that get the config and the runtime (None: not taken),
    # and whether each goes by position (positional-only, *args).
    config_param: tuple[str, bool] | None = None
    runtime_param: tuple[str, bool] | None = None

    def call(self, config: RunnableConfig, runtime: Any) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param, value in ((self.config_param, config), (self.runtime_param, runtime)):
            if param is not None:
                name, positional = param
                if positional:
                    args.append(value)
                else:
                    kwargs[name] = value
        return self.fn(*args, **kwargs)


GraphValue = Pregel | GraphFactory


def _is_runtime(annotation: Any) -> bool:
    """``ServerRuntime``, ``ServerRuntime[Ctx]``, ``Annotated[ServerRuntime,
    ...]``, a concrete runtime class, or such a name left as a string."""
    if annotation is inspect.Parameter.empty:
        return False
    if isinstance(annotation, str):
        # Unresolved (a TYPE_CHECKING import next to one that failed).
        return annotation.split("[", 1)[0].rsplit(".", 1)[-1] == "ServerRuntime"
    if annotation is ServerRuntime:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, _ExecutionRuntime | _ReadRuntime)
    origin = get_origin(annotation)
    if origin is ServerRuntime:
        return True
    args = get_args(annotation)
    return origin is not None and bool(args) and _is_runtime(args[0])


def classify(fn: Callable[..., Any], graph_id: str, spec: str) -> GraphFactory:
    """How to call ``fn``, from its signature (not called here): a factory
    that cannot be called the platform's way stops the start, not a run."""
    where = f"graph {graph_id!r} ({spec})"
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        # The platform takes context managers, not bare generators.
        raise ConfigError(
            f"{where} is a generator function: decorate it with "
            "@contextlib.asynccontextmanager (or @contextlib.contextmanager)"
        )
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read the factory's signature: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, localns=_LOCALNS)
    except Exception:  # noqa: BLE001 - unresolvable names: read them as written
        hints = {}

    def slot(p: inspect.Parameter) -> tuple[str, bool]:
        positional = p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)
        return p.name, positional

    runtime = [p for p in params if _is_runtime(hints.get(p.name, p.annotation))]
    if len(params) == 0:
        return GraphFactory(graph_id, spec, fn)
    if len(params) == 1:
        if runtime:
            return GraphFactory(graph_id, spec, fn, runtime_param=slot(params[0]))
        return GraphFactory(graph_id, spec, fn, config_param=slot(params[0]))
    if len(params) == 2 and len(runtime) == 1:
        other = params[1] if params[0] is runtime[0] else params[0]
        return GraphFactory(
            graph_id, spec, fn, config_param=slot(other), runtime_param=slot(runtime[0])
        )
    if len(params) == 2:
        raise ConfigError(
            f"{where}: a factory with two parameters takes a config and a runtime, "
            "the runtime annotated as langgraph_sdk.runtime.ServerRuntime"
        )
    raise ConfigError(
        f"{where}: a factory takes at most two parameters (config, runtime), "
        f"not {[p.name for p in params]}"
    )


def as_graph(obj: Any, graph_id: str, spec: str) -> Pregel:
    """``obj`` as a compiled graph, named by its id if it has the default
    name (as the platform names it, which clients see in schema titles,
    traces and events)."""
    if isinstance(obj, StateGraph):
        obj = obj.compile()
    if not isinstance(obj, Pregel):
        raise ConfigError(
            f"graph {graph_id!r} ({spec}) is a {type(obj).__name__}, not a LangGraph graph"
        )
    if obj.name == "LangGraph":
        obj = obj.copy(update={"name": graph_id})
    return obj


def server_runtime(
    access: AccessContext, user: User | None, store: Any = None, context: Any = None
) -> Any:
    """The ``ServerRuntime`` a factory gets: the execution variant (with the
    run's context) for a run, the read variant for everything else."""
    if access == RUN:
        return _ExecutionRuntime(access_context=access, user=user, store=store, context=context)
    return _ReadRuntime(access_context=access, user=user, store=store)


def factory_config(config: Mapping[str, Any] | None, access: AccessContext) -> RunnableConfig:
    """The config a factory gets: a copy of ``config`` (so nothing the
    factory does reaches the run's own), the requesting user merged in
    outside a run, the user as an object, and the platform's marker of
    whether the graph will execute."""
    config = dict(config or {})
    configurable = dict(config.get("configurable") or {})
    requester = request_user.get()
    if requester is not None and access != RUN:
        configurable["langgraph_auth_user"] = requester
        configurable["langgraph_auth_user_id"] = requester.get("identity")
        configurable["langgraph_auth_permissions"] = list(requester.get("permissions") or [])
    user = as_user(configurable.get("langgraph_auth_user"))
    if user is not None:
        configurable["langgraph_auth_user"] = user
    configurable["__is_for_execution__"] = access == RUN
    # Every key present, as the platform's ensure_config leaves it.
    defaults: dict[str, Any] = {
        "tags": [],
        "metadata": {},
        "callbacks": None,
        "recursion_limit": 25,
    }
    return cast(RunnableConfig, {**defaults, **config, "configurable": configurable})


@asynccontextmanager
async def build(
    value: GraphValue,
    config: Mapping[str, Any] | None,
    access: AccessContext,
    *,
    store: Any = None,
    context: Any = None,
) -> AsyncIterator[Pregel]:
    """The graph for one use. A plain graph is the one loaded at start; a
    factory is called now, and a context manager it returns stays entered
    until this one exits (with the exception, if the use failed)."""
    if isinstance(value, Pregel):
        yield value
        return
    config = factory_config(config, access)
    runtime = server_runtime(
        access, config["configurable"].get("langgraph_auth_user"), store, context
    )
    async with AsyncExitStack() as stack:
        # The factory may read its config through get_config(), as on the
        # platform; only while it makes the graph, so the run itself does
        # not inherit the factory's copy.
        token = var_child_runnable_config.set(config)
        try:
            made = value.call(config, runtime)
            if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
                made = await stack.enter_async_context(made)
            elif hasattr(made, "__enter__") and hasattr(made, "__exit__"):
                made = stack.enter_context(made)
            elif inspect.isawaitable(made):
                made = await made
        finally:
            var_child_runnable_config.reset(token)
        if not isinstance(made, Pregel | StateGraph):
            raise TypeError(
                f"graph {value.graph_id!r} ({value.spec}): its factory returned "
                f"a {type(made).__name__}, not a LangGraph graph"
            )
        yield as_graph(made, value.graph_id, value.spec)

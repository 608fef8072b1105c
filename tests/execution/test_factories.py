"""Graph factories (``pgqueue.execution.factories``): how a signature is
read at load, and what each kind of factory gets and gives back when a
graph is built. Servers drive them in ``tests/server/test_factories.py``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import var_child_runnable_config
from langgraph.config import get_config
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from langgraph_sdk.auth.types import BaseUser
from langgraph_sdk.runtime import ServerRuntime

from pgqueue.errors import ConfigError
from pgqueue.execution import factories
from pgqueue.execution.factories import RUN, GraphFactory, User, build, classify


def builder() -> StateGraph:
    made = StateGraph(dict)
    made.add_node("node", lambda state: state)
    made.add_edge(START, "node")
    made.add_edge("node", END)
    return made


GRAPH = builder().compile()
ALICE = {"identity": "alice", "permissions": ["read"], "display_name": "Alice", "org": "acme"}


def slots(factory: GraphFactory) -> tuple[Any, Any]:
    return factory.config_param, factory.runtime_param


# -- reading the signature ------------------------------------------------------


def none() -> Pregel:
    return GRAPH


def config_only(config: RunnableConfig) -> Pregel:
    return GRAPH


def unannotated(anything):  # type: ignore[no-untyped-def]
    return GRAPH


def runtime_only(rt: ServerRuntime) -> Pregel:
    return GRAPH


def runtime_generic(rt: ServerRuntime[dict[str, Any]]) -> Pregel:
    return GRAPH


def runtime_annotated(rt: Annotated[ServerRuntime, "doc"]) -> Pregel:
    return GRAPH


def runtime_first(rt: ServerRuntime, cfg: RunnableConfig) -> Pregel:
    return GRAPH


def positional_only(config: RunnableConfig, /) -> Pregel:
    return GRAPH


def runtime_named_only(rt: NotImportedHere, cfg: ServerRuntime) -> Pregel:  # type: ignore[name-defined]  # noqa: F821
    # One annotation names nothing importable: the other is still read.
    return GRAPH


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (none, (None, None)),
        (config_only, (("config", False), None)),
        (unannotated, (("anything", False), None)),
        (positional_only, (("config", True), None)),
        (runtime_only, (None, ("rt", False))),
        (runtime_generic, (None, ("rt", False))),
        (runtime_annotated, (None, ("rt", False))),
        (runtime_first, (("cfg", False), ("rt", False))),
        (runtime_named_only, (("rt", False), ("cfg", False))),
    ],
)
def test_a_signature_says_what_the_factory_takes(fn: Any, expected: tuple[Any, Any]) -> None:
    assert slots(classify(fn, "g", "./g.py:f")) == expected


def two_configs(a: RunnableConfig, b: RunnableConfig) -> Pregel:
    return GRAPH


def three(a: Any, b: Any, c: Any) -> Pregel:
    return GRAPH


def generator(config: RunnableConfig) -> Iterator[Pregel]:
    yield GRAPH


async def async_generator(config: RunnableConfig) -> AsyncIterator[Pregel]:
    yield GRAPH


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (two_configs, "a factory with two parameters takes a config and a runtime"),
        (three, "a factory takes at most two parameters (config, runtime), not ['a', 'b', 'c']"),
        (generator, "is a generator function: decorate it with @contextlib.asynccontextmanager"),
        (async_generator, "is a generator function"),
    ],
)
def test_a_factory_the_platform_could_not_call_is_refused_at_load(fn: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        classify(fn, "g", "./g.py:f")
    assert str(caught.value).startswith("graph 'g' (./g.py:f)")
    assert message in str(caught.value)


# -- building -------------------------------------------------------------------


async def built(fn: Any, config: Any = None, access: Any = RUN, **kw: Any) -> Pregel:
    async with build(classify(fn, "g", "./g.py:f"), config, access, **kw) as made:
        return made


async def test_a_plain_graph_is_used_as_it_is() -> None:
    async with build(GRAPH, {"configurable": {}}, RUN) as made:
        assert made is GRAPH


async def test_a_config_factory_gets_a_copy_of_the_runs_config_with_the_user_as_an_object() -> None:
    seen: list[Any] = []

    def factory(config: RunnableConfig) -> Pregel:
        seen.append(config)
        # The factory reads its config through get_config() too.
        assert get_config() is config
        config["configurable"]["scribbled"] = True
        return GRAPH

    run_config = {
        "configurable": {"thread_id": "t", "langgraph_auth_user": dict(ALICE), "k": 1},
        "metadata": {"run_id": "r"},
    }
    made = await built(factory, run_config)
    assert made.name == "g"  # the default name gives way to the graph id
    [config] = seen
    assert config["metadata"] == {"run_id": "r"}
    assert config["recursion_limit"] == 25
    user = config["configurable"]["langgraph_auth_user"]
    assert isinstance(user, BaseUser)
    assert (user.identity, user.display_name, user.permissions) == ("alice", "Alice", ["read"])
    assert user["identity"] == "alice" and user.org == "acme" and user.is_authenticated
    assert config["configurable"]["__is_for_execution__"] is True
    # What the factory did to its config is not the run's.
    assert "scribbled" not in run_config["configurable"]
    assert isinstance(run_config["configurable"]["langgraph_auth_user"], dict)
    # And the graph, once built, runs outside the factory's config.
    assert var_child_runnable_config.get() is None


async def test_a_runtime_factory_gets_the_platforms_runtime() -> None:
    seen: list[Any] = []

    def factory(runtime: ServerRuntime) -> Pregel:
        seen.append(runtime)
        return GRAPH

    run_config = {"configurable": {"langgraph_auth_user": dict(ALICE)}}
    await built(factory, run_config, RUN, context={"tone": "dry"}, store="the store")
    await built(factory, {}, "threads.read")
    run, read = seen
    assert run.access_context == "threads.create_run"
    assert run.ensure_user().identity == "alice"
    assert run.store == "the store"
    assert run.execution_runtime is run
    assert run.execution_runtime.context == {"tone": "dry"}
    assert read.access_context == "threads.read"
    assert read.execution_runtime is None  # a read has no context
    assert read.user is None
    with pytest.raises(PermissionError):
        read.ensure_user()


async def test_the_requesting_user_reaches_a_factory_outside_a_run() -> None:
    seen: list[Any] = []

    def factory(config: RunnableConfig, runtime: ServerRuntime) -> Pregel:
        seen.append((config["configurable"], runtime.user))
        return GRAPH

    token = factories.request_user.set({"identity": "bob", "permissions": ["x"]})
    try:
        await built(factory, {"configurable": {"langgraph_auth_user": dict(ALICE)}}, RUN)
        await built(factory, {}, "assistants.read")
    finally:
        factories.request_user.reset(token)
    (run_configurable, run_user), (read_configurable, read_user) = seen
    # A run is its submitter's, whoever the worker serves meanwhile.
    assert run_user.identity == "alice" == run_configurable["langgraph_auth_user"].identity
    assert read_user.identity == "bob"
    assert read_configurable["langgraph_auth_user_id"] == "bob"
    assert read_configurable["langgraph_auth_permissions"] == ["x"]


async def test_async_factories_and_context_managers_are_entered_and_left() -> None:
    log: list[Any] = []

    async def coroutine(config: RunnableConfig) -> Pregel:
        log.append("awaited")
        return GRAPH

    @contextlib.asynccontextmanager
    async def async_cm(config: RunnableConfig) -> AsyncIterator[StateGraph]:
        log.append("async enter")
        try:
            yield builder()
        except Exception as exc:
            log.append(f"async exit {exc}")
            raise
        log.append("async exit")

    @contextlib.contextmanager
    def sync_cm() -> Iterator[Pregel]:
        log.append("sync enter")
        yield GRAPH
        log.append("sync exit")

    await built(coroutine)
    async with build(classify(async_cm, "g", "s"), None, RUN) as made:
        assert isinstance(made, Pregel)  # a StateGraph yielded: compiled
        assert log[-1] == "async enter"
    with pytest.raises(ValueError, match="the run failed"):
        async with build(classify(async_cm, "g", "s"), None, RUN):
            raise ValueError("the run failed")
    await built(sync_cm)
    assert log == [
        "awaited",
        "async enter",
        "async exit",
        "async enter",
        "async exit the run failed",
        "sync enter",
        "sync exit",
    ]


async def test_a_failing_factory_raises_its_own_error() -> None:
    def factory() -> Pregel:
        raise RuntimeError("no model configured")

    with pytest.raises(RuntimeError, match="no model configured"):
        await built(factory)
    assert var_child_runnable_config.get() is None


def test_a_user_is_a_dict_that_answers_as_an_object() -> None:
    user = User({"identity": "carol"})
    assert user == {"identity": "carol"}
    assert (user.identity, user.display_name, user.permissions, user.is_authenticated) == (
        "carol",
        "carol",
        [],
        True,
    )
    with pytest.raises(AttributeError):
        _ = user.email
    assert factories.as_user("dave") == {"identity": "dave"}
    assert factories.as_user({"no": "identity"}) is None
    assert factories.as_user(None) is None

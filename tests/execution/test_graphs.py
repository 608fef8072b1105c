"""Graphs from ``langgraph.json``: each test writes a small project into
``tmp_path`` and loads it as ``langgraph dev`` would.

Loading a project changes the process (``dependencies`` go on
``sys.path``, ``env`` into ``os.environ``, graph modules into
``sys.modules``): the ``project`` fixture puts ``sys.path`` back, and the
environment variables used here are unique to this file and restored by
``monkeypatch``. The store's TTL refusals are in
``tests/maintenance/test_store_sweeper.py``.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.pregel import Pregel
from langgraph_sdk import Auth

from pgqueue.execution.factories import GraphFactory
from pgqueue.execution.graphs import (
    ASSISTANT_NAMESPACE,
    GraphRegistry,
    StoreTTL,
    load_config,
    system_assistant_id,
)

GRAPH_MODULE = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    n: int


def bump(state: State) -> dict:
    return {"n": state["n"] + 1}


builder = StateGraph(State)
builder.add_node("bump", bump)
builder.add_edge(START, "bump")
builder.add_edge("bump", END)
graph = builder.compile()

calls = []


def make_graph():
    calls.append(None)
    return builder.compile()


def make_with_config(config):
    calls.append(config)
    return builder


async def make_async():
    return graph


def make_nothing():
    return {"not": "a graph"}


answer = 42
"""

Project = Callable[..., Path]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """Writes langgraph.json (and any other files) into tmp_path and
    returns the config's path."""
    monkeypatch.setattr(sys, "path", list(sys.path))

    def write(config: Any, files: dict[str, str] | None = None, raw: str | None = None) -> Path:
        for name, text in {"graph.py": GRAPH_MODULE, **(files or {})}.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        path = tmp_path / "langgraph.json"
        path.write_text(raw if raw is not None else json.dumps(config))
        return path

    return write


def unset(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Remove ``names`` from the environment now and again after the test,
    whatever loading a project put there."""
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def error_of(path: Path) -> str:
    with pytest.raises(ValueError) as caught:
        load_config(path)
    return str(caught.value)


def load_error(registry: GraphRegistry, graph_id: str) -> str:
    with pytest.raises(ValueError) as caught:
        registry.get(graph_id)
    return str(caught.value)


def run(graph: Pregel) -> Any:
    return graph.invoke({"n": 1})


# -- the file itself -----------------------------------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nowhere" / "langgraph.json")
    assert "langgraph.json: no such file" in message
    assert str(tmp_path / "nowhere") in message


def test_a_file_that_is_not_json_is_refused(project: Project) -> None:
    path = project(None, raw='{"graphs": {')
    assert f"{path}: not valid JSON" in error_of(path)


@pytest.mark.parametrize(
    "config",
    [{}, {"graphs": {}}, {"graphs": []}, {"graphs": "./graph.py:graph"}, [], "graphs", None],
)
def test_a_config_without_graphs_is_refused(project: Project, config: Any) -> None:
    assert "needs a non-empty object 'graphs'" in error_of(project(config))


@pytest.mark.parametrize(
    "spec", ["./graph.py", "graph", "", 42, None, ["./graph.py:graph"], {"description": "x"}]
)
def test_a_graph_spec_without_an_attribute_is_refused(project: Project, spec: Any) -> None:
    message = error_of(project({"graphs": {"bad": spec}}))
    assert "graph 'bad' must be 'path/to/file.py:attribute'" in message


def test_graphs_are_loaded_when_first_asked_for_not_before(project: Project) -> None:
    registry = load_config(
        project(
            {"graphs": {"ok": "./graph.py:graph", "broken": "./broken.py:graph"}},
            {"broken.py": "raise RuntimeError('boom at import')\n"},
        )
    )
    assert registry.specs == {"ok": "./graph.py:graph", "broken": "./broken.py:graph"}
    assert registry.graphs == {}
    assert run(registry.get("ok")) == {"n": 2}
    message = load_error(registry, "broken")
    assert "graph 'broken' (./broken.py:graph) failed to load" in message
    assert "RuntimeError: boom at import" in message


# -- what a graph entry may name -----------------------------------------------


def test_a_compiled_graph(project: Project) -> None:
    registry = load_config(project({"graphs": {"g": "./graph.py:graph"}}))
    graph = registry.get("g")
    assert isinstance(graph, Pregel)
    assert registry.get("g") is graph  # loaded once
    assert run(graph) == {"n": 2}


def test_a_state_graph_is_compiled(project: Project) -> None:
    registry = load_config(project({"graphs": {"g": "./graph.py:builder"}}))
    graph = registry.get("g")
    assert isinstance(graph, Pregel)
    assert run(graph) == {"n": 2}


def test_the_dict_form_of_an_entry(project: Project) -> None:
    config = {"graphs": {"g": {"path": "./graph.py:graph", "description": "bumps n"}}}
    registry = load_config(project(config))
    assert registry.specs == {"g": "./graph.py:graph"}
    assert run(registry.get("g")) == {"n": 2}


def test_a_factory_is_only_checked_at_load(project: Project) -> None:
    # Imported and its signature read (a bad one stops the start), not
    # called: the platform calls a factory for each use.
    registry = load_config(
        project({"graphs": {"fac": "./graph.py:make_graph", "later": "./graph.py:make_async"}})
    )
    assert isinstance(registry.get("fac"), GraphFactory)
    assert isinstance(registry.get("later"), GraphFactory)
    assert registry.get("fac") is registry.get("fac")
    assert sys.modules["pgqueue_graph_fac"].calls == []


async def test_a_factory_is_called_for_each_use(project: Project) -> None:
    registry = load_config(
        project(
            {
                "graphs": {
                    "fac": "./graph.py:make_graph",
                    "cfg": "./graph.py:make_with_config",
                    "later": "./graph.py:make_async",
                }
            }
        )
    )
    for _ in range(2):
        async with registry.graph("fac", None, "threads.create_run") as graph:
            assert run(graph) == {"n": 2}
    assert sys.modules["pgqueue_graph_fac"].calls == [None, None]
    config = {"configurable": {"thread_id": "t"}}
    async with registry.graph("cfg", config, "threads.read") as graph:
        assert isinstance(graph, Pregel)  # it returned a StateGraph: compiled here
        assert graph.name == "cfg"
        assert run(graph) == {"n": 2}
    [seen] = sys.modules["pgqueue_graph_cfg"].calls
    assert seen["configurable"] == {"thread_id": "t", "__is_for_execution__": False}
    async with registry.graph("later", None, "assistants.read") as graph:
        assert run(graph) == {"n": 2}


async def test_a_factory_that_makes_no_graph_fails_when_built(project: Project) -> None:
    registry = load_config(project({"graphs": {"odd": "./graph.py:make_nothing"}}))
    with pytest.raises(TypeError) as caught:
        async with registry.graph("odd", None, "threads.create_run"):
            pass
    assert str(caught.value) == (
        "graph 'odd' (./graph.py:make_nothing): its factory returned a dict, not a LangGraph graph"
    )


@pytest.mark.parametrize(("attr", "kind"), [("answer", "int"), ("calls", "list")])
def test_something_that_is_not_a_graph_is_refused(project: Project, attr: str, kind: str) -> None:
    registry = load_config(project({"graphs": {"odd": f"./graph.py:{attr}"}}))
    message = load_error(registry, "odd")
    assert f"graph 'odd' (./graph.py:{attr}) is a {kind}, not a LangGraph graph" in message


def test_a_missing_attribute_or_file_is_named(project: Project) -> None:
    registry = load_config(
        project({"graphs": {"attr": "./graph.py:nothing_here", "file": "./absent.py:graph"}})
    )
    message = load_error(registry, "attr")
    assert "graph 'attr' (./graph.py:nothing_here) failed to load: AttributeError" in message
    message = load_error(registry, "file")
    assert "graph 'file' (./absent.py:graph) failed to load" in message
    assert "absent.py" in message


def test_a_graph_in_a_subdirectory(project: Project) -> None:
    registry = load_config(
        project(
            {"graphs": {"deep": "./agents/deep/graph.py:graph"}},
            {"agents/deep/graph.py": GRAPH_MODULE},
        )
    )
    assert run(registry.get("deep")) == {"n": 2}


# -- dependencies and env --------------------------------------------------------


def test_dependencies_go_on_the_import_path(project: Project, tmp_path: Path) -> None:
    # The graph imports a helper that only the dependency makes importable,
    # and a second graph is named as 'module:attr' from the same place.
    helper = f"helper_{uuid.uuid4().hex}"
    package = f"agents_{uuid.uuid4().hex}"
    path = project(
        {
            "dependencies": ["./lib", "some-pypi-package", 3],
            "graphs": {"uses": "./uses.py:graph", "by_module": f"{package}.graph:graph"},
        },
        {
            f"lib/{helper}.py": "STEP = 10\n",
            "uses.py": GRAPH_MODULE.replace(
                'state["n"] + 1', f'state["n"] + __import__("{helper}").STEP'
            ),
            f"lib/{package}/__init__.py": "",
            f"lib/{package}/graph.py": GRAPH_MODULE,
        },
    )
    registry = load_config(path)
    assert sys.path[0] == str((tmp_path / "lib").resolve())
    assert "some-pypi-package" not in sys.path
    assert run(registry.get("uses")) == {"n": 11}
    assert run(registry.get("by_module")) == {"n": 2}


def test_env_as_an_object_fills_the_environment(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    unset(monkeypatch, "PGQ_TEST_GRAPHS_A", "PGQ_TEST_GRAPHS_B", "PGQ_TEST_GRAPHS_SET")
    monkeypatch.setenv("PGQ_TEST_GRAPHS_SET", "from the process")
    load_config(
        project(
            {
                "graphs": {"g": "./graph.py:graph"},
                "env": {
                    "PGQ_TEST_GRAPHS_A": "a",
                    "PGQ_TEST_GRAPHS_B": 2,
                    "PGQ_TEST_GRAPHS_SET": "x",
                },
            }
        )
    )
    assert os.environ["PGQ_TEST_GRAPHS_A"] == "a"
    assert os.environ["PGQ_TEST_GRAPHS_B"] == "2"
    # What the process already has wins.
    assert os.environ["PGQ_TEST_GRAPHS_SET"] == "from the process"


def test_env_as_a_file_is_read_like_a_dotenv(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"PGQ_TEST_GRAPHS_{n}" for n in ("PLAIN", "SPACED", "DQ", "SQ", "EQ", "SET")]
    unset(monkeypatch, *names, "PGQ_TEST_GRAPHS_COMMENTED")
    monkeypatch.setenv("PGQ_TEST_GRAPHS_SET", "from the process")
    dotenv = """\
        # a comment
        PGQ_TEST_GRAPHS_PLAIN=plain

          PGQ_TEST_GRAPHS_SPACED = spaced out
        PGQ_TEST_GRAPHS_DQ="double quoted"
        PGQ_TEST_GRAPHS_SQ='single quoted'
        PGQ_TEST_GRAPHS_EQ=a=b
        # PGQ_TEST_GRAPHS_COMMENTED=no
        not a variable
        PGQ_TEST_GRAPHS_SET=from the file
        """
    load_config(project({"graphs": {"g": "./graph.py:graph"}, "env": ".env"}, {".env": dotenv}))
    assert {n: os.environ.get(n) for n in names} == {
        "PGQ_TEST_GRAPHS_PLAIN": "plain",
        "PGQ_TEST_GRAPHS_SPACED": "spaced out",
        "PGQ_TEST_GRAPHS_DQ": "double quoted",
        "PGQ_TEST_GRAPHS_SQ": "single quoted",
        "PGQ_TEST_GRAPHS_EQ": "a=b",
        "PGQ_TEST_GRAPHS_SET": "from the process",
    }
    assert "PGQ_TEST_GRAPHS_COMMENTED" not in os.environ


def test_an_env_file_that_is_not_there_is_skipped(project: Project) -> None:
    before = dict(os.environ)
    registry = load_config(project({"graphs": {"g": "./graph.py:graph"}, "env": ".env.absent"}))
    assert dict(os.environ) == before
    assert list(registry.specs) == ["g"]


# -- system assistants -----------------------------------------------------------


def test_system_assistant_ids_are_the_platforms() -> None:
    # uuid5 of the graph id in the platform's own namespace (not one of the
    # RFC's: NAMESPACE_URL is 6ba7b811-...).
    assert ASSISTANT_NAMESPACE == uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
    for graph_id in ("agent", "chat", "a graph with spaces", "é"):
        assert system_assistant_id(graph_id) == uuid.uuid5(ASSISTANT_NAMESPACE, graph_id)
    # The id every LangGraph Platform deployment gives the graph "agent"
    # (langgraph-sdk's own examples show it).
    assert str(system_assistant_id("agent")) == "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
    assert system_assistant_id("agent") != system_assistant_id("Agent")


def test_graph_id_for_a_graph_id_or_its_system_assistant(project: Project) -> None:
    registry = load_config(
        project({"graphs": {"agent": "./graph.py:graph", "other": "./graph.py:builder"}})
    )
    agent = system_assistant_id("agent")
    assert registry.assistant_ids == {agent: "agent", system_assistant_id("other"): "other"}
    assert registry.graph_id_for("agent") == "agent"
    assert registry.graph_id_for(agent) == "agent"
    assert registry.graph_id_for(str(agent)) == "agent"
    assert registry.graph_id_for(str(agent).upper()) == "agent"
    for unknown in ("nope", uuid.uuid4(), str(system_assistant_id("nope")), None, ""):
        with pytest.raises(KeyError) as caught:
            registry.graph_id_for(unknown)
        assert "graphs: ['agent', 'other']" in str(caught.value)


# -- store and auth --------------------------------------------------------------


def test_store_ttl_defaults_and_conversion(project: Project) -> None:
    graphs = {"g": "./graph.py:graph"}
    assert load_config(project({"graphs": graphs})).store_ttl == StoreTTL()
    assert load_config(project({"graphs": graphs, "store": {}})).store_ttl == StoreTTL()
    assert load_config(project({"graphs": graphs, "store": {"ttl": None}})).store_ttl == StoreTTL()
    ttl = load_config(project({"graphs": graphs, "store": {"ttl": {"default_ttl": 1}}})).store_ttl
    assert ttl == StoreTTL(refresh_on_read=True, default_ttl=1.0, sweep_interval_minutes=5.0)
    assert isinstance(ttl.default_ttl, float)
    assert ttl.store_config() == {"refresh_on_read": True, "default_ttl": 1.0, "omit_expired": True}
    assert StoreTTL().store_config() == {
        "refresh_on_read": True,
        "default_ttl": None,
        "omit_expired": True,
    }


@pytest.mark.parametrize(
    ("ttl", "named"),
    [
        ({"default_ttl": True}, "store.ttl.default_ttl must be a positive number of minutes"),
        ({"sweep_interval_minutes": -0.5}, "store.ttl.sweep_interval_minutes must be a positive"),
        ({"sweep_interval_minutes": False}, "store.ttl.sweep_interval_minutes must be a positive"),
        ({"refresh_on_read": None}, "store.ttl.refresh_on_read must be true or false"),
        ({"b": 1, "a": 2}, "store.ttl: unknown key(s) ['a', 'b']"),
        ("30", "store.ttl must be an object"),
    ],
)
def test_store_ttl_refusals_name_the_setting(project: Project, ttl: Any, named: str) -> None:
    message = error_of(project({"graphs": {"g": "./graph.py:graph"}, "store": {"ttl": ttl}}))
    assert named in message


def test_no_auth(project: Project) -> None:
    registry = load_config(project({"graphs": {"g": "./graph.py:graph"}}))
    assert registry.auth_spec is None
    assert registry.load_auth() is None


def test_auth_names_a_langgraph_sdk_auth(project: Project) -> None:
    auth_module = """\
        from langgraph_sdk import Auth

        auth = Auth()


        @auth.authenticate
        async def authenticate(authorization: str | None) -> str:
            return "someone"
        """
    registry = load_config(
        project(
            {"graphs": {"g": "./graph.py:graph"}, "auth": {"path": "./auth.py:auth"}},
            {"auth.py": auth_module},
        )
    )
    assert registry.auth_spec == "./auth.py:auth"
    assert isinstance(registry.load_auth(), Auth)


def test_an_auth_that_fails_to_load_is_named(project: Project) -> None:
    registry = load_config(
        project(
            {"graphs": {"g": "./graph.py:graph"}, "auth": {"path": "./auth.py:missing"}},
            {"auth.py": ""},
        )
    )
    with pytest.raises(ValueError) as caught:
        registry.load_auth()
    assert "auth (./auth.py:missing) failed to load: AttributeError" in str(caught.value)


@pytest.mark.parametrize(
    "auth", ["./auth.py:auth", {"path": "./auth.py"}, {}, {"path": 1}, ["./auth.py:auth"]]
)
def test_a_malformed_auth_is_refused(project: Project, auth: Any) -> None:
    message = error_of(project({"graphs": {"g": "./graph.py:graph"}, "auth": auth}))
    assert 'auth must be {"path": "./auth.py:auth"}' in message

"""Graphs from a ``langgraph.json``, in the format ``langgraph dev`` reads.

    {"graphs": {"agent": "./graph.py:graph"}, "env": ".env", "dependencies": ["."]}

A graph entry names a file (or a module) and an attribute: a compiled
graph, a ``StateGraph`` (compiled here), or a factory, a function that
makes one, called for each run and each read of the graph with what the
platform passes it (``factories``). Each graph gets a system assistant
whose id is derived from the graph id exactly as the platform derives it,
so clients that pass the graph id (or that id) as ``assistant_id`` work
unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from pgqueue.errors import ConfigError
from pgqueue.execution import config_keys, factories
from pgqueue.execution.factories import AccessContext, GraphValue

# The platform's namespace for system assistant ids.
ASSISTANT_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


def system_assistant_id(graph_id: str) -> uuid.UUID:
    return uuid.uuid5(ASSISTANT_NAMESPACE, graph_id)


@dataclass(frozen=True)
class StoreTTL:
    """The store's time to live, from langgraph.json's ``"store": {"ttl":
    {...}}`` as the platform reads it. Minutes throughout."""

    # A read (get, search) restarts an item's TTL unless it asks otherwise.
    refresh_on_read: bool = True
    # TTL of items put without one; None: they never expire.
    default_ttl: float | None = None
    # How often each server process deletes expired items. Reads never see
    # them anyway (omit_expired); the sweep gives the space back.
    sweep_interval_minutes: float = 5.0

    def store_config(self) -> dict[str, Any]:
        """For AsyncPostgresStore(ttl=...)."""
        return {
            "refresh_on_read": self.refresh_on_read,
            "default_ttl": self.default_ttl,
            "omit_expired": True,
        }


# A century in minutes: a longer TTL would put a thread's expiry past what a
# timestamp holds (threads.create and update refuse the same).
MAX_TTL_MINUTES = 100 * 365 * 24 * 60


@dataclass(frozen=True)
class ThreadTTL:
    """Threads' time to live, from langgraph.json's ``"checkpointer": {"ttl":
    {...}}`` as the platform reads it. Minutes throughout."""

    # What an expired thread loses: everything ("delete"), or every
    # checkpoint but its latest ("keep_latest").
    strategy: str = "delete"
    # TTL of threads created without one; None: they never expire.
    default_ttl: float | None = None
    # How often the pruner looks for expired threads (None: its own period).
    sweep_interval_minutes: int | None = None
    # Expired threads handled per pass at most (None: all of them, in batches).
    sweep_limit: int | None = None

    def default(self) -> dict[str, Any] | None:
        """pgqueue_defaults' 'thread_ttl' row (migration 0011), or None."""
        if self.default_ttl is None:
            return None
        return {"strategy": self.strategy, "default_ttl": self.default_ttl}


@dataclass
class GraphRegistry:
    config_path: Path
    specs: dict[str, str]
    # What each graph entry names, loaded once: a compiled graph or a factory.
    graphs: dict[str, GraphValue] = field(default_factory=dict)
    store_ttl: StoreTTL = field(default_factory=StoreTTL)
    thread_ttl: ThreadTTL = field(default_factory=ThreadTTL)
    # langgraph.json's "pgqueue": {"run_retention_days": N} (None: not set):
    # below the flag and the environment variable, above the default.
    run_retention_days: float | None = None
    # langgraph.json's "auth": {"path": "./auth.py:auth"} (a langgraph_sdk.Auth).
    auth_spec: str | None = None
    # langgraph.json's "http" section, as given: only the HTTP server reads it.
    http: dict[str, Any] = field(default_factory=dict)
    # langgraph.json's "webhooks" section, as given (see execution/webhooks.py).
    webhooks: dict[str, Any] = field(default_factory=dict)

    @property
    def assistant_ids(self) -> dict[uuid.UUID, str]:
        return {system_assistant_id(g): g for g in self.specs}

    def graph_id_for(self, assistant_or_graph_id: str | uuid.UUID | None) -> str:
        key = str(assistant_or_graph_id) if assistant_or_graph_id is not None else ""
        if key in self.specs:
            return key
        try:
            return self.assistant_ids[uuid.UUID(key)]
        except (ValueError, KeyError):
            raise KeyError(
                f"no graph or system assistant {key!r}; graphs: {sorted(self.specs)}"
            ) from None

    def load_auth(self) -> Any:
        """The ``langgraph_sdk.Auth`` langgraph.json names, or None."""
        if self.auth_spec is None:
            return None
        return _import(self.config_path.parent, "pgqueue_auth", "auth", self.auth_spec)

    def load_http_app(self) -> Any:
        """The app langgraph.json's ``http.app`` names (``"./app.py:app"``),
        or None; the HTTP server checks what it is."""
        spec = self.http.get("app")
        if spec is None:
            return None
        if not isinstance(spec, str) or ":" not in spec:
            raise ConfigError(f'{self.config_path}: http.app must be "./file.py:attribute"')
        return _import(self.config_path.parent, "pgqueue_http_app", "http.app", spec)

    def get(self, graph_id: str) -> GraphValue:
        """The entry's graph, or its factory (imported and its signature
        checked, not called): what ``graph()`` builds from."""
        if graph_id not in self.graphs:
            self.graphs[graph_id] = _load(self.config_path.parent, graph_id, self.specs[graph_id])
        return self.graphs[graph_id]

    def graph(
        self,
        graph_id: str,
        config: Mapping[str, Any] | None,
        access: AccessContext,
        *,
        store: Any = None,
        context: Any = None,
    ) -> AbstractAsyncContextManager[Pregel]:
        """``async with registry.graph(...) as graph``: the graph for one use
        (``access``: a run, ``threads.create_run``, or a read, see
        ``factories``); a factory is called with ``config`` each time."""
        return factories.build(self.get(graph_id), config, access, store=store, context=context)


def load_config(path: str | Path) -> GraphRegistry:
    config_path = Path(path).resolve()
    try:
        raw = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid JSON: {exc}") from None
    if isinstance(raw, dict):
        config_keys.review(raw, str(config_path))
    graphs = raw.get("graphs") if isinstance(raw, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(
            f"{config_path}: needs a non-empty object 'graphs' mapping graph ids to 'file.py:attr'"
        )
    specs: dict[str, str] = {}
    for graph_id, spec in graphs.items():
        if isinstance(spec, dict):  # {"path": "...", "description": ...} form
            spec = spec.get("path")
        if not isinstance(spec, str) or ":" not in spec:
            raise ConfigError(
                f"{config_path}: graph {graph_id!r} must be 'path/to/file.py:attribute'"
            )
        specs[graph_id] = spec
    base = config_path.parent
    for dep in raw.get("dependencies", []) or []:
        if isinstance(dep, str) and dep.startswith((".", "/")):  # a local path
            sys.path.insert(0, str((base / dep).resolve()))
    _load_env(base, raw.get("env"))
    store_ttl = _store_ttl(config_path, raw.get("store"))
    auth = raw.get("auth")
    auth_spec = auth.get("path") if isinstance(auth, dict) else None
    if auth is not None and (not isinstance(auth_spec, str) or ":" not in auth_spec):
        raise ConfigError(f'{config_path}: auth must be {{"path": "./auth.py:auth"}}')
    sections = {}
    for key in ("http", "webhooks"):
        sections[key] = raw.get(key) or {}
        if not isinstance(sections[key], dict):
            raise ConfigError(f"{config_path}: {key} must be an object")
    return GraphRegistry(
        config_path=config_path,
        specs=specs,
        store_ttl=store_ttl,
        thread_ttl=_thread_ttl(config_path, raw.get("checkpointer")),
        run_retention_days=_run_retention_days(config_path, raw.get("pgqueue")),
        auth_spec=auth_spec,
        **sections,
    )


def _thread_ttl(config_path: Path, checkpointer: Any) -> ThreadTTL:
    where = f"{config_path}: checkpointer.ttl"
    keys = {"strategy", "default_ttl", "sweep_interval_minutes", "sweep_limit"}
    ttl = _section(where, checkpointer.get("ttl") if isinstance(checkpointer, dict) else None, keys)
    if ttl is None:
        return ThreadTTL()
    strategy = ttl.get("strategy", "delete")
    if strategy not in ("delete", "keep_latest"):
        raise ConfigError(f'{where}.strategy must be "delete" or "keep_latest"')
    default_ttl = ttl.get("default_ttl")
    if default_ttl is not None and not (
        _positive(default_ttl, float) and default_ttl <= MAX_TTL_MINUTES
    ):
        raise ConfigError(
            f"{where}.default_ttl must be a positive number of minutes, "
            f"at most {MAX_TTL_MINUTES} (a century)"
        )
    whole: dict[str, int | None] = {}
    for key in ("sweep_interval_minutes", "sweep_limit"):
        value = ttl.get(key)
        if value is not None and not _positive(value, int):
            raise ConfigError(f"{where}.{key} must be a positive whole number")
        whole[key] = value
    return ThreadTTL(
        strategy=strategy,
        default_ttl=None if default_ttl is None else float(default_ttl),
        sweep_interval_minutes=whole["sweep_interval_minutes"],
        sweep_limit=whole["sweep_limit"],
    )


def _run_retention_days(config_path: Path, section: Any) -> float | None:
    """pgqueue's own section of langgraph.json (the platform has no such
    setting): ``{"run_retention_days": N}``, N >= 0."""
    where = f"{config_path}: pgqueue"
    found = _section(where, section, {"run_retention_days"})
    days = found.get("run_retention_days") if found is not None else None
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
        raise ConfigError(f"{where}.run_retention_days must be 0 or more days")
    return float(days)


def _section(where: str, value: Any, keys: set[str]) -> dict[str, Any] | None:
    """A langgraph.json object of settings (None if absent), refused if it
    is no object or has a key outside ``keys``: a typo must not pass."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    unknown = sorted(set(value) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}")
    return value


def _positive(value: Any, kind: type) -> bool:
    """A number above 0 (a whole one for ``int``); JSON's true is no number."""
    numbers = (int,) if kind is int else (int, float)
    return not isinstance(value, bool) and isinstance(value, numbers) and value > 0


def _store_ttl(config_path: Path, store: Any) -> StoreTTL:
    where = f"{config_path}: store.ttl"
    keys = {"refresh_on_read", "default_ttl", "sweep_interval_minutes"}
    ttl = _section(where, store.get("ttl") if isinstance(store, dict) else None, keys)
    if ttl is None:
        return StoreTTL()
    refresh = ttl.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise ConfigError(f"{where}.refresh_on_read must be true or false")
    minutes: dict[str, float | None] = {}
    for key in ("default_ttl", "sweep_interval_minutes"):
        value = ttl.get(key)
        if value is not None and not _positive(value, float):
            raise ConfigError(f"{where}.{key} must be a positive number of minutes")
        minutes[key] = None if value is None else float(value)
    return StoreTTL(
        refresh_on_read=refresh,
        default_ttl=minutes["default_ttl"],
        sweep_interval_minutes=minutes["sweep_interval_minutes"] or 5.0,
    )


def _load_env(base: Path, env: Any) -> None:
    if isinstance(env, dict):
        for key, value in env.items():
            os.environ.setdefault(str(key), str(value))
    elif isinstance(env, str) and (base / env).is_file():
        for line in (base / env).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def _import(base: Path, module_name: str, what: str, spec: str) -> Any:
    """The attribute ``spec`` ('path/file.py:attr' or 'module:attr') names."""
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py") or "/" in target:
            path = (base / target).resolve()
            module_spec = importlib.util.spec_from_file_location(module_name, path)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"{what}: cannot load {path}")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
        return getattr(module, attr)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{what} ({spec}) failed to load: {type(exc).__name__}: {exc}") from exc


def _load(base: Path, graph_id: str, spec: str) -> GraphValue:
    obj = _import(base, f"pgqueue_graph_{graph_id}", f"graph {graph_id!r}", spec)
    if callable(obj) and not isinstance(obj, (Pregel, StateGraph)):
        # Called per use, as on the platform: here only its signature is read.
        return factories.classify(obj, graph_id, spec)
    return factories.as_graph(obj, graph_id, spec)

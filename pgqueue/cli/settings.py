"""Every knob of a process that runs workers, in one place, and the one
place that turns them into the library's configs and services.

A knob has one default, one environment variable (two for concurrency:
``langgraph dev``'s name is read too) and, usually, one flag. The defaults
are the library configs' own (``WorkerConfig.concurrency`` and so on), so
each number is written once, in the class that uses it. A value comes from
the flag if given, else the environment, else that default.

``pgqueue worker`` and ``pgqueue serve`` (whose settings hold a
``ProcessSettings``) both build their worker, executor and maintenance
services here, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from pgqueue.core.handler import Handler, HandlerFunction
from pgqueue.core.live import LiveRuns
from pgqueue.errors import ConfigError
from pgqueue.execution.webhook_policy import WebhookPolicy
from pgqueue.execution.webhooks import WebhookConfig
from pgqueue.maintenance.pruner import DAY, Pruner, PrunerConfig
from pgqueue.maintenance.service import PeriodicService
from pgqueue.maintenance.sweeper import Sweeper, SweeperConfig
from pgqueue.worker.config import WorkerConfig
from pgqueue.worker.heartbeat import DEFAULT_LEASE_SECONDS, UNHEALTHY_EXIT_DEADLINE, HeartbeatConfig
from pgqueue.worker.worker import Worker

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from pgqueue.core.notifier import Notifier
    from pgqueue.execution.executor import ExecutorConfig, GraphExecutor
    from pgqueue.execution.graphs import GraphRegistry

# How long a starting worker or server waits for a database that is not
# answering yet (restarting, or starting beside it under a supervisor)
# before it gives up with a message instead of a traceback.
STARTUP_WAIT_SECONDS = 60.0
# Most connections a worker's runs take for their checkpoints and events.
CHECKPOINTER_CONNECTIONS = 10
# Days finished runs are kept when no flag, variable or langgraph.json says.
RUN_RETENTION_DAYS = PrunerConfig.run_retention / DAY


@dataclass(frozen=True)
class Knob:
    field: str  # ProcessSettings' field, and the flag's argparse dest
    flags: tuple[str, ...]
    env: tuple[str, ...]  # the first one set (and not empty) wins
    help: str
    # The smallest value that makes sense, and whether it is allowed itself.
    minimum: float = 0
    inclusive: bool = False
    # The default in words, for a knob whose default is None.
    unset: str = ""

    def name(self) -> str:
        """How an error message names it: as a user would set it."""
        return " / ".join([*self.flags, *(f"${e}" for e in self.env)]) or self.field


KNOBS: tuple[Knob, ...] = (
    Knob(
        "concurrency",
        ("--concurrency", "--n-jobs-per-worker"),
        ("PGQUEUE_CONCURRENCY", "N_JOBS_PER_WORKER"),
        "runs executed at once per process, and the claim batch size",
        minimum=1,
        inclusive=True,
    ),
    Knob(
        "poll_interval",
        ("--poll-interval",),
        ("PGQUEUE_POLL_SECONDS",),
        "seconds between fallback polls; NOTIFY does the waking",
    ),
    Knob(
        "heartbeat_interval",
        ("--heartbeat-interval",),
        ("PGQUEUE_HEARTBEAT_SECONDS",),
        "seconds between lease renewals",
    ),
    Knob(
        "stale_after",
        ("--stale-after",),
        ("PGQUEUE_LEASE_SECONDS",),
        "lease window in seconds: a run whose worker is silent longer is requeued",
        unset="the database's pgqueue.lease_timeout, 20 s",
    ),
    Knob(
        "sweep_interval",
        ("--sweep-interval",),
        ("PGQUEUE_SWEEP_SECONDS",),
        "seconds between in-process sweeps",
    ),
    Knob("sweep", ("--no-sweep",), (), "leave sweeping to pg_cron or another process"),
    Knob(
        "prune_interval",
        ("--prune-interval",),
        ("PGQUEUE_PRUNE_SECONDS",),
        "seconds between pruner passes (expired events, runs and threads); "
        "langgraph.json's checkpointer.ttl.sweep_interval_minutes makes it sooner",
    ),
    Knob(
        "run_retention_days",
        ("--run-retention-days",),
        ("PGQUEUE_RUN_RETENTION_DAYS",),
        "days a finished run is kept (with its events) before the pruner deletes it; "
        "each thread's newest run is kept whatever its age",
        inclusive=True,
        unset=f"langgraph.json's pgqueue.run_retention_days, else {RUN_RETENTION_DAYS:g}",
    ),
    Knob(
        "shutdown_grace",
        ("--shutdown-grace",),
        ("PGQUEUE_SHUTDOWN_GRACE_SECONDS",),
        "on SIGINT/SIGTERM, seconds in-flight runs get to finish before they are handed "
        "back to the queue; a second signal skips it",
        inclusive=True,
    ),
    Knob(
        "webhook_attempts",
        ("--webhook-attempts",),
        ("PGQUEUE_WEBHOOK_ATTEMPTS",),
        "tries per webhook (connection errors, 429 and 5xx are tried again)",
        minimum=1,
        inclusive=True,
    ),
    Knob(
        "webhook_backoff",
        ("--webhook-backoff",),
        ("PGQUEUE_WEBHOOK_BACKOFF_SECONDS",),
        "seconds before a webhook's second try, doubling for each one after",
        inclusive=True,
    ),
    # No flag: a secret on a command line is visible to every user of the
    # machine (ps).
    Knob(
        "webhook_secret",
        (),
        ("PGQUEUE_WEBHOOK_SECRET",),
        "key that signs each webhook (HMAC-SHA256, header X-Pgqueue-Signature)",
        unset="none, webhooks go unsigned",
    ),
    # No flag: it applies before anything else, to every command that
    # connects, and an operator sets it once for a deployment.
    Knob(
        "startup_wait",
        (),
        ("PGQUEUE_STARTUP_WAIT_SECONDS",),
        "at start, seconds to wait (with backoff) for a database that does not answer yet",
        inclusive=True,
    ),
)


@dataclass(frozen=True)
class ProcessSettings:
    """The knobs' values for one process; see ``KNOBS`` for each one."""

    concurrency: int = WorkerConfig.concurrency
    poll_interval: float = WorkerConfig.poll_interval
    heartbeat_interval: float = HeartbeatConfig.interval
    # None: the database's pgqueue.lease_timeout, as the pg_cron job uses.
    stale_after: float | None = SweeperConfig.stale_after
    sweep_interval: float = SweeperConfig.interval
    sweep: bool = True
    prune_interval: float = PrunerConfig.interval
    run_retention_days: float | None = None  # None: langgraph.json's, else the default
    shutdown_grace: float = WorkerConfig.shutdown_grace
    webhook_attempts: int = WebhookConfig.attempts
    webhook_backoff: float = WebhookConfig.backoff
    webhook_secret: str | None = field(default=WebhookConfig.secret, repr=False)
    startup_wait: float = STARTUP_WAIT_SECONDS

    def __post_init__(self) -> None:
        for knob in KNOBS:
            value = getattr(self, knob.field)
            if value is None or isinstance(value, bool | str):
                continue
            low = knob.minimum
            if value < low or (value == low and not knob.inclusive):
                bound = f"{low:g} or more" if knob.inclusive else f"more than {low:g}"
                raise ConfigError(f"{knob.name()} must be {bound}, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProcessSettings:
        """Defaults, then the environment (an empty variable counts as unset)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for knob in KNOBS:
            for var in knob.env:
                raw = environ.get(var)
                if raw:
                    kind = _kind(knob.field)
                    values[knob.field] = raw if kind is str else env_value(var, raw, kind)
                    break
        return cls(**values)

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> ProcessSettings:
        """``from_env``, then the flags given on the command line (a
        command that has no such flag leaves the knob as it is)."""
        given = {k.field: getattr(args, k.field, None) for k in KNOBS}
        return replace(cls.from_env(environ), **{k: v for k, v in given.items() if v is not None})

    # -- the library's configs -------------------------------------------------

    def heartbeat_config(self) -> HeartbeatConfig:
        return HeartbeatConfig(
            interval=self.heartbeat_interval,
            # Liveness needs a number even when the sweep uses the
            # database's window: that window's default.
            lease_timeout=self.stale_after or DEFAULT_LEASE_SECONDS,
            # These processes own their lifetime: a stuck shutdown must not
            # keep a process without a live worker around.
            exit_deadline=UNHEALTHY_EXIT_DEADLINE,
        )

    def worker_config(self, **extra: Any) -> WorkerConfig:
        return WorkerConfig(
            concurrency=self.concurrency,
            poll_interval=self.poll_interval,
            heartbeat=self.heartbeat_config(),
            shutdown_grace=self.shutdown_grace,
            **extra,
        )

    def sweeper_config(self) -> SweeperConfig:
        return SweeperConfig(interval=self.sweep_interval, stale_after=self.stale_after)

    def pruner_config(self, registry: GraphRegistry | None = None) -> PrunerConfig:
        """With ``registry``: its langgraph.json's thread TTL sweep settings
        and run retention (the flag and the environment win over it)."""
        interval, days, limit = self.prune_interval, self.run_retention_days, None
        if registry is not None:
            ttl = registry.thread_ttl
            if ttl.sweep_interval_minutes is not None:
                interval = min(interval, ttl.sweep_interval_minutes * 60.0)
            limit = ttl.sweep_limit
            if days is None:
                days = registry.run_retention_days
        days = RUN_RETENTION_DAYS if days is None else days
        return PrunerConfig(interval=interval, run_retention=days * DAY, thread_limit=limit)

    def webhook_config(
        self, registry: GraphRegistry | None = None, environ: Mapping[str, str] | None = None
    ) -> WebhookConfig:
        """With ``registry``: its langgraph.json's webhooks policy, header
        templates resolved from ``environ`` (default: the process's)."""
        policy, headers = webhook_policy(registry, environ)
        return WebhookConfig(
            attempts=self.webhook_attempts,
            backoff=self.webhook_backoff,
            policy=policy,
            headers=headers,
            secret=self.webhook_secret,
        )

    def executor_config(self, registry: GraphRegistry | None = None) -> ExecutorConfig:
        # Imported here: LangGraph takes a second to import, and commands
        # like migrate never run a graph.
        from pgqueue.execution.executor import ExecutorConfig

        # Runs hold a checkpointer connection only while they write or read:
        # 100 streaming runs kept 1-3 busy (bench/http_stream.py).
        return ExecutorConfig(
            pool_size=min(self.concurrency, CHECKPOINTER_CONNECTIONS),
            webhooks=self.webhook_config(registry),
        )

    # -- the services built from them ------------------------------------------

    def graph_executor(
        self, registry: GraphRegistry, database_url: str, *, live: LiveRuns | None = None
    ) -> GraphExecutor:
        from pgqueue.execution.executor import GraphExecutor

        return GraphExecutor(registry, database_url, self.executor_config(registry), live=live)

    def graph_worker(
        self,
        registry: GraphRegistry,
        database_url: str,
        *,
        notifier: Notifier | None = None,
        live: LiveRuns | None = None,
    ) -> Worker:
        """A worker running ``registry``'s graphs with the LangGraph executor.
        ``live``: the process's stream followers (a server's own worker)."""
        from pgqueue.execution.executor import is_retriable

        return Worker(
            database_url,
            self.graph_executor(registry, database_url, live=live),
            self.worker_config(is_retriable=is_retriable),
            notifier=notifier,
        )

    def handler_worker(self, handler: Handler | HandlerFunction, database_url: str) -> Worker:
        """A worker running any handler: an async callable that takes a
        ``ClaimedRun``, or the whole ``Handler`` contract."""
        return Worker(database_url, handler, self.worker_config())

    def maintenance(
        self,
        pool: asyncpg.Pool,
        *,
        workers: bool = True,
        checkpointer: AsyncPostgresSaver | None = None,
        registry: GraphRegistry | None = None,
    ) -> list[PeriodicService]:
        """The pruner, which every worker and server process runs (a
        server's, given its ``checkpointer``, also cuts keep_latest threads),
        and with ``workers`` the sweeper, unless pg_cron or another process
        sweeps. Both are safe to run in any number of processes."""
        pruner = Pruner(pool, self.pruner_config(registry), checkpointer)
        services: list[PeriodicService] = [pruner]
        if workers and self.sweep:
            services.append(Sweeper(pool, self.sweeper_config()))
        return services


_FIELD_TYPES = {f.name: f.type for f in fields(ProcessSettings)}

T = TypeVar("T", int, float)


def _kind(field: str) -> Callable[[str], Any]:
    # Annotations are strings (``from __future__ import annotations``).
    kinds: dict[Any, Callable[[str], Any]] = {"int": int, "str | None": str}
    return kinds.get(_FIELD_TYPES[field], float)


def webhook_policy(
    registry: GraphRegistry | None, environ: Mapping[str, str] | None = None
) -> tuple[WebhookPolicy, dict[str, str]]:
    """langgraph.json's webhooks policy and its headers, templates resolved
    from ``environ`` (default: the process's; langgraph.json's "env" is in it
    by now): a ConfigError naming the key, or the variable, if either won't do."""
    if registry is None:
        return WebhookPolicy(), {}
    where = str(registry.config_path)
    policy = WebhookPolicy.from_section(registry.webhooks, where)
    try:
        return policy, policy.render_headers(os.environ if environ is None else environ)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def env_value(var: str, raw: str, kind: Callable[[str], T]) -> T:
    """``raw`` read as a number, or a ConfigError naming the variable."""
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"${var} must be {what}, got {raw!r}") from None


def env_number(name: str, kind: Callable[[str], T], default: T) -> T:
    """One environment variable as a number; unset or empty: ``default``."""
    raw = os.environ.get(name)
    return env_value(name, raw, kind) if raw else default


def add_flags(parser: argparse.ArgumentParser) -> None:
    """The knobs' flags. Each defaults to None ("not given"): the value is
    settled by ``ProcessSettings.from_args``, and the help says how."""
    defaults = ProcessSettings()
    for knob in KNOBS:
        if not knob.flags:
            continue
        if knob.field == "sweep":
            parser.add_argument(
                *knob.flags, dest="sweep", action="store_const", const=False, help=knob.help
            )
            continue
        default = getattr(defaults, knob.field)
        where = [f"${e}" for e in knob.env]
        where.append(f"else {default:g}" if default is not None else f"else {knob.unset}")
        parser.add_argument(
            *knob.flags,
            dest=knob.field,
            type=_kind(knob.field),
            default=None,
            help=f"{knob.help} (default: {', '.join(where)})",
        )

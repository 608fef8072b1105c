"""The one place a worker process's knobs are settled: defaults, the
environment, flags, and the configs and workers built from them, for
``pgqueue worker`` and ``pgqueue serve`` alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from pgqueue.cli.main import build_parser as library_parser
from pgqueue.cli.settings import ProcessSettings
from pgqueue.cli.worker import load_graphs, register_graphs
from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from pgqueue.db.ids import uuid7
from pgqueue.errors import ConfigError
from pgqueue.execution.graphs import load_config, system_assistant_id
from pgqueue.execution.webhooks import WebhookConfig
from pgqueue.maintenance.pruner import PrunerConfig
from pgqueue.maintenance.sweeper import SweeperConfig
from pgqueue.worker.config import WorkerConfig
from server.cli import build_parser as full_parser
from server.settings import Settings
from tests.support.inprocess import running
from tests.support.procs import GRAPHS_CONFIG, write_config
from tests.support.waiting import eventually
from tests.support.webhooks import LOOPBACK_ALLOWED, Receiver, graphs_config


def test_the_defaults_are_the_library_configs_own() -> None:
    settings = ProcessSettings.from_env({})
    assert settings == ProcessSettings()
    worker = settings.worker_config()
    assert (worker.concurrency, worker.poll_interval, worker.shutdown_grace) == (
        WorkerConfig().concurrency,
        WorkerConfig().poll_interval,
        WorkerConfig().shutdown_grace,
    )
    assert settings.sweeper_config() == SweeperConfig()
    assert settings.pruner_config() == PrunerConfig()
    assert settings.webhook_config() == WebhookConfig()
    # No lease window given: the heartbeat judges itself by the database's
    # default one, 20 s.
    assert settings.heartbeat_config().lease_timeout == 20.0


def test_a_flag_beats_the_environment_which_beats_the_default() -> None:
    environ = {"PGQUEUE_CONCURRENCY": "7", "PGQUEUE_POLL_SECONDS": "2", "PGQUEUE_LEASE_SECONDS": ""}
    args = library_parser().parse_args(["worker", "--handler", "m:f", "--concurrency", "3"])
    settings = ProcessSettings.from_args(args, environ)
    assert (settings.concurrency, settings.poll_interval) == (3, 2.0)
    assert settings.heartbeat_interval == ProcessSettings().heartbeat_interval
    assert settings.stale_after is None  # empty means unset
    # langgraph dev's name for it, when pgqueue's own is not set.
    assert ProcessSettings.from_env({"N_JOBS_PER_WORKER": "4"}).concurrency == 4
    no_sweep = library_parser().parse_args(["worker", "--handler", "m:f", "--no-sweep"])
    assert ProcessSettings.from_args(no_sweep, {}).sweep is False


def test_the_run_retention_reaches_the_pruner_in_days() -> None:
    assert ProcessSettings().pruner_config().run_retention == 30 * 86_400
    environ = {"PGQUEUE_RUN_RETENTION_DAYS": "0.5"}
    assert ProcessSettings.from_env(environ).pruner_config().run_retention == 43_200
    args = library_parser().parse_args(["worker", "--handler", "m:f", "--run-retention-days", "7"])
    assert ProcessSettings.from_args(args, environ).pruner_config().run_retention == 7 * 86_400
    with pytest.raises(ConfigError, match="--run-retention-days .* must be 0 or more, got -1"):
        ProcessSettings.from_env({"PGQUEUE_RUN_RETENTION_DAYS": "-1"})


def test_langgraph_json_sets_the_run_retention_below_the_flag_and_environment(
    tmp_path: Path,
) -> None:
    registry = load_config(write_config(tmp_path, pgqueue={"run_retention_days": 2}))
    assert ProcessSettings().pruner_config(registry).run_retention == 2 * 86_400
    environ = {"PGQUEUE_RUN_RETENTION_DAYS": "3"}
    assert ProcessSettings.from_env(environ).pruner_config(registry).run_retention == 3 * 86_400
    for bad in ({"run_retention_days": -1}, {"run_retention_days": "soon"}, {"keep": 1}):
        with pytest.raises(ConfigError, match="pgqueue"):
            load_config(write_config(tmp_path, pgqueue=bad))


def test_nonsense_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"\$PGQUEUE_HEARTBEAT_SECONDS must be a number"):
        ProcessSettings.from_env({"PGQUEUE_HEARTBEAT_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="--concurrency .* must be 1 or more, got 0"):
        ProcessSettings.from_env({"PGQUEUE_CONCURRENCY": "0"})
    with pytest.raises(ConfigError, match="--webhook-attempts .* must be 1 or more"):
        ProcessSettings(webhook_attempts=0)
    with pytest.raises(ConfigError, match="--stale-after .* must be more than 0"):
        ProcessSettings(stale_after=-1)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.refuse_first = 1_000  # every delivery: 503, so each one is tried again
    yield r
    r.server.shutdown()


def _worker_settings(command: str, database_url: str) -> ProcessSettings:
    """The settings ``pgqueue worker`` and ``pgqueue serve`` build from
    their command lines: attempts from the environment for one, from the
    flag for the other."""
    if command == "worker":
        args = library_parser().parse_args(["worker", "--config", str(GRAPHS_CONFIG)])
        environ = {"PGQUEUE_WEBHOOK_ATTEMPTS": "2", "PGQUEUE_WEBHOOK_BACKOFF_SECONDS": "0.01"}
        return ProcessSettings.from_args(args, environ)
    argv = ["serve", "--config", str(GRAPHS_CONFIG), "--webhook-attempts", "2"]
    args = full_parser().parse_args([*argv, "--webhook-backoff", "0.01"])
    settings = Settings.from_env(database_url, args.config, process=ProcessSettings.from_args(args))
    return settings.process  # what server/app.py builds its worker from


@pytest.mark.parametrize("command", ["worker", "serve"])
async def test_webhook_attempts_reach_the_executor(
    command: str,
    database_url: str,
    pool: asyncpg.Pool,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """PGQUEUE_WEBHOOK_ATTEMPTS (or --webhook-attempts) used to be read and
    then dropped: a webhook was tried 4 times whatever it said."""
    monkeypatch.setenv("DATABASE_URL", database_url)  # tests/graphs nodes use it
    settings = _worker_settings(command, database_url)
    assert settings.executor_config().webhooks.attempts == 2
    # The receiver listens on 127.0.0.1, which the default policy refuses.
    registry = load_graphs(graphs_config(tmp_path, LOOPBACK_ALLOWED))
    await register_graphs(pool, registry)
    run = NewRun(
        thread_id=uuid7(),
        assistant_id=system_assistant_id("echo"),
        kwargs={"input": {"count": 1}, "webhook": receiver.url},
    )
    async with running(settings.graph_worker(registry, database_url)):
        [submitted] = await queue.submit(pool, [run])

        async def refused_twice() -> bool:
            return receiver.refused >= 2

        await eventually(refused_twice, timeout=30, what="two webhook attempts")
    # The worker has stopped, and its executor waited for every delivery
    # in flight to end: two attempts, no third.
    assert receiver.refused == 2
    status = await pool.fetchval("SELECT status FROM runs WHERE run_id = $1", submitted.run_id)
    assert status == "success"

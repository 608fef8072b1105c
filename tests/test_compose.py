"""docker-compose.yml: valid for docker-compose (Debian's 1.29), and wired as
postgres (with pg_cron) -> one-shot `alembic upgrade head` -> worker.

No Docker engine is needed: `docker-compose config` only reads the file.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.system import require_system

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"

# docker-compose 1.x is a Python program that depends on PyYAML; its own
# interpreter turns the YAML it prints into JSON, so the suite needs no YAML
# library of its own.
TO_JSON = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"


def _docker_compose() -> str:
    path = shutil.which("docker-compose")
    require_system(
        path is not None, "docker-compose is not on PATH (Debian: docker-compose)", installs="it"
    )
    assert path is not None
    return path


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    # -f and a fixed project name: ignore COMPOSE_FILE/COMPOSE_PROJECT_NAME
    # from the caller's environment.
    cmd = [_docker_compose(), "-f", str(COMPOSE_FILE), "-p", "pgqueue", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)


def _interpreter(executable: str) -> list[str]:
    with open(executable, "rb") as f:
        first = f.readline().decode(errors="replace")
    if not first.startswith("#!"):
        pytest.fail(f"{executable} is not a Python script; docker-compose 1.x expected")
    return shlex.split(first[2:])


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    convert = [*_interpreter(_docker_compose()), "-c", TO_JSON]
    parsed = subprocess.run(
        convert, input=result.stdout, capture_output=True, text=True, timeout=60
    )
    assert parsed.returncode == 0, parsed.stderr
    loaded: dict[str, Any] = json.loads(parsed.stdout)
    return loaded


def test_config_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_services(config: dict[str, Any]) -> None:
    assert {"postgres", "migrate", "server", "worker"} <= set(config["services"])


def test_server_waits_for_migrations_and_serves_the_example(config: dict[str, Any]) -> None:
    server = config["services"]["server"]
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert _command(server)[:2] == ["pgqueue", "server"]
    assert (REPO / _command(server)[3]).is_file()


def test_migrate_runs_alembic_once(config: dict[str, Any]) -> None:
    migrate = config["services"]["migrate"]
    assert _command(migrate) == ["alembic", "upgrade", "head"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_worker_waits_for_migrations(config: dict[str, Any]) -> None:
    worker = config["services"]["worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert _command(worker)[:2] == ["pgqueue", "worker"]


def test_postgres_preloads_pg_cron(config: dict[str, Any]) -> None:
    postgres = config["services"]["postgres"]
    settings = dict(arg.split("=", 1) for arg in _command(postgres) if "=" in arg)
    assert "pg_cron" in settings["shared_preload_libraries"].split(",")
    # pg_cron runs jobs only in this one database: it must be the app's.
    assert settings["cron.database_name"] == postgres["environment"]["POSTGRES_DB"]

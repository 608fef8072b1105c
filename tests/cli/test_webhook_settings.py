"""Where a worker's webhook settings come from (pgqueue/cli/settings.py):
the secret from PGQUEUE_WEBHOOK_SECRET, the policy and headers from
langgraph.json's webhooks section, header templates filled from the
environment here (the library never reads it), all checked at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgqueue.cli.settings import ProcessSettings
from pgqueue.cli.worker import load_graphs
from pgqueue.errors import ConfigError
from pgqueue.execution.webhook_policy import WebhookPolicy
from pgqueue.execution.webhooks import WebhookConfig
from server.cli import build_parser
from tests.support.webhooks import graphs_config

SECTION = {
    "env_prefix": "HOOK_",
    "url": {"require_https": True},
    "headers": {"Authorization": "Bearer ${{ env.HOOK_TOKEN }}"},
}


def test_the_secret_comes_from_the_environment_and_stays_out_of_reprs() -> None:
    settings = ProcessSettings.from_env({"PGQUEUE_WEBHOOK_SECRET": "s3cret"})
    assert settings.webhook_config().secret == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(settings.webhook_config())
    assert ProcessSettings.from_env({"PGQUEUE_WEBHOOK_SECRET": ""}).webhook_secret is None
    # No flag: a command line is visible to every user of the machine.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--webhook-secret", "x"])


def test_the_section_reaches_the_executor_with_its_headers_resolved(tmp_path: Path) -> None:
    registry = load_graphs(graphs_config(tmp_path, {"url": {"disable_loopback": False}}))
    registry.webhooks = SECTION  # as load_config keeps it; resolved below
    settings = ProcessSettings.from_env({"PGQUEUE_WEBHOOK_ATTEMPTS": "2"})
    config = settings.webhook_config(registry, {"HOOK_TOKEN": "t0k"})
    assert config.policy == WebhookPolicy.from_section(SECTION)
    assert config.headers == {"Authorization": "Bearer t0k"}
    assert config.attempts == 2
    # Without langgraph.json: the defaults, which refuse inward addresses.
    assert settings.webhook_config().policy == WebhookPolicy()
    assert ProcessSettings().webhook_config() == WebhookConfig()


def test_a_template_whose_variable_is_unset_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = graphs_config(tmp_path, SECTION)
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    with pytest.raises(ConfigError) as raised:
        load_graphs(config)
    assert str(raised.value).startswith(f"{config}: webhooks.headers.Authorization")
    assert "$HOOK_TOKEN is not set" in str(raised.value)
    monkeypatch.setenv("HOOK_TOKEN", "t0k")
    registry = load_graphs(config)
    assert ProcessSettings().webhook_config(registry).headers == {"Authorization": "Bearer t0k"}


def test_langgraph_json_env_can_hold_the_variable(tmp_path: Path) -> None:
    """langgraph.json's "env" is loaded before the templates are filled."""
    config = graphs_config(tmp_path, SECTION)
    (tmp_path / ".env").write_text("HOOK_TOKEN=from-dotenv\n")
    raw = config.read_text().replace('"webhooks"', '"env": ".env", "webhooks"', 1)
    config.write_text(raw)
    try:
        registry = load_graphs(config)
        assert ProcessSettings().webhook_config(registry).headers == {
            "Authorization": "Bearer from-dotenv"
        }
    finally:
        os.environ.pop("HOOK_TOKEN", None)  # load_config set it in this process


def test_a_bad_section_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    config = graphs_config(tmp_path, {"url": {"allowed_ports": [443, "80"]}})
    with pytest.raises(ConfigError, match=r"webhooks\.url\.allowed_ports"):
        load_graphs(config)

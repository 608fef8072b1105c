"""Every langgraph.json key is served, refused at start naming it, or
accepted with a warning that says what will not happen: none is ignored in
silence (pgqueue/execution/config_keys.py)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from pgqueue.errors import ConfigError
from pgqueue.execution.graphs import ThreadTTL, load_config
from tests.support.procs import REPO, write_config
from tests.support.server import refused_start

GRAPHS = REPO / "tests" / "graphs"


def test_the_served_keys_load_without_a_word(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        load_config(GRAPHS / "langgraph.json")
        load_config(
            write_config(
                tmp_path,
                env={"X": "1"},
                store={"ttl": {"default_ttl": 5, "refresh_on_read": True}},
                http={"cors": {"allow_origins": ["*"]}},
                auth={"path": str(GRAPHS / "auth" / "auth.py") + ":auth"},
            )
        )
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pgqueue")] == []


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"encryption": {"path": "./e.py:e"}}, "encryption"),
        ({"store": {"index": {"dims": 3, "embed": "openai:x"}}}, "store.index"),
        ({"checkpointer": {"path": "./c.py:c"}}, "checkpointer.path"),
        ({"http": {"disable_webhooks": True}}, "http.disable_webhooks"),
        ({"http": {"disable_store": "yes"}}, "http.disable_store"),
    ],
)
def test_a_key_that_would_quietly_change_behaviour_is_refused_naming_it(
    tmp_path: Path, keys: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, **keys))
    assert f": {named}: " in str(raised.value)


def test_the_others_load_with_a_warning_saying_what_will_not_happen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = {
        "python_version": "3.12",
        "dockerfile_lines": ["RUN true"],
        "checkpointer": {"ttl": {"strategy": "delete", "default_ttl": 60}},
        "auth": {"path": str(GRAPHS / "auth" / "auth.py") + ":auth", "cache": {"ttl_seconds": 5}},
        "http": {"disable_store": False, "logging_headers": {"includes": ["*"]}},
        "ui": {"chat": "./ui.tsx"},
        "grpahs": {},  # a typo
    }
    path = write_config(tmp_path, **keys)
    raw = json.loads(path.read_text())
    raw["dependencies"].append("langchain-openai")
    path.write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        load_config(path)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "dockerfile_lines, python_version: settings of `langgraph build`" in said
    assert "checkpointer" not in said  # served (tests/server/test_thread_ttl.py)
    assert "auth.cache is not applied" in said
    assert "http.logging_headers is not applied" in said
    assert "http.disable_store" not in said  # false is what pgqueue does
    assert "ui components are not served" in said
    assert "grpahs is not a key pgqueue knows: ignored" in said
    assert "dependencies ['langchain-openai']: pgqueue does not install packages" in said


def test_a_server_given_a_refused_key_does_not_start_and_says_why(
    database_url: str, tmp_path: Path
) -> None:
    log = refused_start(database_url, write_config(tmp_path, encryption={"path": "./e.py:e"}))
    assert "encryption: custom encryption is not supported" in log


@pytest.mark.parametrize(
    ("ttl", "refused"),
    [
        ({"strategy": "archive"}, 'checkpointer.ttl.strategy must be "delete" or "keep_latest"'),
        ({"default_ttl": 0}, "checkpointer.ttl.default_ttl must be a positive number"),
        ({"default_ttl": True}, "checkpointer.ttl.default_ttl must be a positive number"),
        ({"sweep_interval_minutes": 1.5}, "sweep_interval_minutes must be a positive whole"),
        ({"sweep_limit": 0}, "checkpointer.ttl.sweep_limit must be a positive whole number"),
    ],
)
def test_a_thread_ttl_that_cannot_work_is_refused_naming_its_key(
    tmp_path: Path, ttl: dict[str, object], refused: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(refused)):
        load_config(write_config(tmp_path, checkpointer={"ttl": ttl}))


def test_a_thread_ttl_is_read_as_the_platform_writes_it(tmp_path: Path) -> None:
    ttl = {"strategy": "keep_latest", "default_ttl": 0.5, "sweep_interval_minutes": 2}
    read = load_config(write_config(tmp_path, checkpointer={"ttl": {**ttl, "sweep_limit": 9}}))
    assert read.thread_ttl == ThreadTTL("keep_latest", 0.5, 2, 9)
    assert read.thread_ttl.default() == {"strategy": "keep_latest", "default_ttl": 0.5}
    assert load_config(write_config(tmp_path, checkpointer={})).thread_ttl.default() is None

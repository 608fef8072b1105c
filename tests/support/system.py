"""Tests that need system packages (PostgreSQL 15 binaries, pg_cron,
docker-compose): skipped where they are missing, except in CI."""

from __future__ import annotations

import os

import pytest


def require_system(available: bool, why: str, installs: str = "them") -> None:
    """Skip unless ``available``. Where PGQUEUE_REQUIRE_SYSTEM_DEPS=1 (CI,
    which installed the packages) fail instead: a skip there would hide a
    broken install."""
    if available:
        return
    if os.environ.get("PGQUEUE_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(f"{why}; .ci/install-system-deps installs {installs}")
    pytest.skip(why)

"""What pgqueue's pools log while the database is down."""

from __future__ import annotations

import inspect
import logging

import asyncpg
import pytest

from pgqueue.db.pools import FLOOR_WARNING

FLOOR = FLOOR_WARNING + "floor; retrying"


def test_asyncpg_still_logs_the_floor_warning_this_filter_shortens() -> None:
    # If asyncpg rewords it, the filter below matches nothing any more.
    assert f"'{FLOOR_WARNING}'" in inspect.getsource(asyncpg.pool.Pool)


def test_a_failed_floor_restore_is_one_line_naming_the_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("asyncpg.pool")
    try:
        raise asyncpg.CannotConnectNowError("the database system is shutting down")
    except asyncpg.CannotConnectNowError:
        with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
            log.warning(FLOOR, exc_info=True)
    [record] = caplog.records
    assert record.exc_info is None
    assert caplog.text.strip().endswith(
        f"{FLOOR} (CannotConnectNowError: the database system is shutting down)"
    )
    assert "Traceback" not in caplog.text

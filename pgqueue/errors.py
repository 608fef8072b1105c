"""Exceptions shared across pgqueue's modules."""

from __future__ import annotations

# SQLSTATE raised by pgqueue_assert_lease() (migrations 0002).
LEASE_LOST_SQLSTATE = "PGQ01"


class LeaseLost(Exception):
    """The worker no longer holds the run's lease (swept, cancelled, taken
    over): nothing it tried to write in that transaction was committed."""

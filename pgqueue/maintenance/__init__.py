"""Periodic services that keep the queue healthy: each has a frozen config
with defaults, a ``run_once()`` returning what it did, and the shared loop
of ``service.PeriodicService``. Any number of processes may run them."""

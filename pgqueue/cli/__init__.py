"""The ``pgqueue`` command's library half (``python -m pgqueue``): migrate,
downgrade, worker, sweep and demo. ``server.cli`` adds ``serve`` and
``server`` on top, with the same flags.

``settings`` holds every knob of a worker process and builds the library's
configs and services from them; ``database`` resolves the database URL and
waits for it; each command has its own module."""

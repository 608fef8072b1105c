"""The ``pgqueue`` command's library half: migrate, downgrade, worker,
sweep and demo. ``server.cli`` adds ``serve`` and ``server`` on top."""

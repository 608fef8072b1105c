"""``python -m server``: the full ``pgqueue`` command, ``serve`` and
``server`` included (``python -m pgqueue`` has the library's commands)."""

from __future__ import annotations

import signal
import sys

# SIGINT stops pgqueue from its first instant, also when it was started
# with SIGINT ignored, as a shell script's background job is: once running,
# the worker and the server handle SIGINT themselves, so starting must not
# ignore it.
signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    # A SIGINT while the commands import (most of a second) is a stop
    # before anything started, not a death by signal (see pgqueue/__main__).
    from server.cli import main
except KeyboardInterrupt:
    print("pgqueue: interrupted while starting", file=sys.stderr)
    sys.exit(0)

sys.exit(main())

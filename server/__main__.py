"""``python -m server``: the full ``pgqueue`` command, ``serve`` and
``server`` included (``python -m pgqueue`` has the library's commands)."""

from __future__ import annotations

import sys

try:
    # A SIGINT while the commands import (most of a second) is a stop
    # before anything started, not a death by signal (see pgqueue/__main__).
    from server.cli import main
except KeyboardInterrupt:
    print("pgqueue: interrupted while starting", file=sys.stderr)
    sys.exit(0)

sys.exit(main())

"""``python -m pgqueue``: the library's commands (see ``pgqueue.cli``)."""

from __future__ import annotations

import signal
import sys

# SIGINT stops pgqueue from its first instant, also when it was started
# with SIGINT ignored, as a shell script's background job is: once running,
# the worker and the server handle SIGINT themselves, so starting must not
# ignore it.
signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    # Importing the commands takes most of a second (alembic, asyncpg,
    # LangGraph): a SIGINT in that window is a stop before anything started,
    # as it is once main() runs, not a death by signal.
    from pgqueue.cli.main import main
except KeyboardInterrupt:
    print("pgqueue: interrupted while starting", file=sys.stderr)
    sys.exit(0)

sys.exit(main())

"""``python -m pgqueue``: the library's commands (see ``pgqueue.cli``)."""

from __future__ import annotations

import sys

try:
    # Importing the commands takes most of a second (alembic, asyncpg,
    # LangGraph): a SIGINT in that window is a stop before anything started,
    # as it is once main() runs, not a death by signal.
    from pgqueue.cli.main import main
except KeyboardInterrupt:
    print("pgqueue: interrupted while starting", file=sys.stderr)
    sys.exit(0)

sys.exit(main())

"""``python -m server``: the full ``pgqueue`` command, ``serve`` and
``server`` included (``python -m pgqueue`` has the library's commands)."""

from __future__ import annotations

import sys

from server.cli import main

sys.exit(main())

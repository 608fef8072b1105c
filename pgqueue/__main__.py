from __future__ import annotations

import sys

from pgqueue.cli import main

sys.exit(main())

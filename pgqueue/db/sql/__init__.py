"""Every runtime SQL statement, loaded by name from the ``*.sql`` files here.

Keeping them in one directory gives reviewers one place to read everything
pgqueue asks of PostgreSQL: ``queries.sql`` for the queue core, one file per
HTTP resource (``threads.sql``, ``crons.sql``, ...). Names are unique across
files. Use ``queries.claim_runs`` and so on.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def _load() -> dict[str, str]:
    found: dict[str, str] = {}
    files = sorted(
        (f for f in resources.files(__package__).iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    for file in files:
        parts = _NAME.split(file.read_text())
        # parts = [preamble, name1, body1, name2, body2, ...]
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
            if name in found:
                raise ValueError(f"duplicate query name {name!r} in {file.name}")
            found[name] = "\n".join(lines).strip().rstrip(";")
    return found


class _Queries:
    def __init__(self, statements: dict[str, str]) -> None:
        self._statements = statements

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in pgqueue/sql") from None

    def names(self) -> list[str]:
        return sorted(self._statements)


queries = _Queries(_load())

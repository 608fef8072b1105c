"""Every runtime SQL statement, loaded from ``queries.sql`` by name.

Keeping them in one file gives reviewers one place to read everything the
queue asks of PostgreSQL. Use ``queries.claim_runs`` and so on.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def _load() -> dict[str, str]:
    text = resources.files(__package__).joinpath("queries.sql").read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        if name in found:
            raise ValueError(f"duplicate query name {name!r} in queries.sql")
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


class _Queries:
    def __init__(self, statements: dict[str, str]) -> None:
        self._statements = statements

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in queries.sql") from None

    def names(self) -> list[str]:
        return sorted(self._statements)


queries = _Queries(_load())

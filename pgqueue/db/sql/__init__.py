"""Every runtime SQL statement, loaded by name from the ``*.sql`` files here.

Keeping them in one directory gives reviewers one place to read everything
pgqueue asks of PostgreSQL, one file per table or role: ``queue.sql`` (the
queue core on runs), ``workers.sql`` (leases, heartbeats, the sweep),
``events.sql``, ``retention.sql`` (what the pruner deletes),
``connections.sql`` (session settings of a run's connection), ``admin.sql``
(the operator commands: pgqueue runs, pgqueue stats), ``observe.sql``
(what ``/metrics`` reads at each scrape), and one per
HTTP resource (``threads.sql``, ``runs.sql``, ...).
Use ``queries.claim_runs`` and so on.

Each statement exists once, whichever driver sends it, written with
PostgreSQL's own ``$1`` placeholders: asyncpg takes them as they are, and
psycopg connections send them through ``pgqueue.db.psycopg_sql``. Loading
refuses a block without a one-line description (its first line, a comment),
a name used twice, and psycopg-style placeholders, so a driver-specific copy
of a statement cannot creep back in.

The files of the resources an Auth guards, and the dashboard's
(``RESOURCE_FILES``), fail closed:
each of their blocks applies the request's authorization filter
(``pgqueue_auth_match(metadata, $n::jsonb)``, or its ``_indexed`` form in
searches; migration 0010), or says in a
``-- internal:`` line why no request reaches it unfiltered (a worker's or
the scheduler's statement, or one that runs after an authorized read in
the same transaction). A new statement that forgets both does not load.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
# %s and %(name)s; format()'s %L, %I inside a statement stay allowed.
_PSYCOPG_PLACEHOLDER = re.compile(r"%(\(\w+\))?s")
RESOURCE_FILES = frozenset(
    {"threads.sql", "runs.sql", "assistants.sql", "crons.sql", "dashboard.sql"}
)
AUTH_PREDICATE = "pgqueue_auth_match"
INTERNAL = "-- internal:"


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
            where = f"{file.name}: {name}"
            block = body.strip().splitlines()
            if not block or not block[0].startswith("-- "):
                raise ValueError(f"{where}: the block must start with a one-line description")
            if name in found:
                raise ValueError(f"duplicate query name {name!r} in {file.name}")
            lines = [ln for ln in block if not ln.lstrip().startswith("--")]
            statement = "\n".join(lines).strip().rstrip(";")
            if _PSYCOPG_PLACEHOLDER.search(statement):
                raise ValueError(f"{where}: use $1, $2, ... placeholders, for every driver")
            if (
                file.name in RESOURCE_FILES
                and AUTH_PREDICATE not in statement
                and not any(ln.strip().startswith(INTERNAL) for ln in block)
            ):
                raise ValueError(
                    f"{where}: apply the authorization filter ({AUTH_PREDICATE}(metadata, $n)) "
                    f"or say why not in an '{INTERNAL}' line"
                )
            found[name] = statement
    return found


class _Queries:
    def __init__(self, statements: dict[str, str]) -> None:
        self._statements = statements

    def __getattr__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in pgqueue/db/sql") from None

    def names(self) -> list[str]:
        return sorted(self._statements)


queries = _Queries(_load())

"""The house rule: which room of the package may import which.

Bottom to top: ``types``, ``errors`` and ``instruments`` (the metrics and
log context every room records to); ``db``; ``observe`` (what a scrape
reads); ``core``; ``worker`` and
``maintenance`` (peers that never import each other); ``execution`` (which
meets the worker only at ``core.handler``); ``resources``; ``cli``; and
``server/`` on top. ``pgqueue/__init__.py`` and ``__main__.py`` are the
facade. Lower rooms never import higher ones, and nothing under ``pgqueue/``
imports ``server``.

The checker reads the source with ``ast`` (nothing is imported) and looks at
every ``import`` in the tree, those inside functions included: a lazy import
is still a dependency. It is run on the repository, and on small synthetic
packages so that it is known to fail when it should.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pgqueue", "server")
MAX_LINES = 400

# Each room and the module prefix that places a module in it; the most
# specific prefix wins.
ROOMS: dict[str, tuple[str, ...]] = {
    "types": ("pgqueue.types",),
    "errors": ("pgqueue.errors",),
    "instruments": ("pgqueue.observe.metrics", "pgqueue.observe.logs"),
    "db": ("pgqueue.db",),
    "observe": ("pgqueue.observe",),
    "core": ("pgqueue.core",),
    "worker": ("pgqueue.worker",),
    "maintenance": ("pgqueue.maintenance",),
    "execution": ("pgqueue.execution",),
    "resources": ("pgqueue.resources",),
    "cli": ("pgqueue.cli",),
    "facade": ("pgqueue", "pgqueue.__main__"),
    "server": ("server",),
}
# Exact-match prefixes: "pgqueue" names the facade module alone, not the
# whole package.
EXACT = {"pgqueue", "pgqueue.__main__"}

_BOTTOM = frozenset({"types", "errors", "instruments"})
_PGQUEUE_ROOMS = frozenset(ROOMS) - {"server"}

# room -> what it may import besides itself: room names, or dotted module
# names for a single module of another room.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "types": frozenset(),
    "errors": frozenset({"types"}),
    # Counters and a context variable: anything may record to them.
    "instruments": frozenset({"types", "errors"}),
    "db": _BOTTOM,
    "observe": _BOTTOM | {"db"},
    "core": _BOTTOM | {"db"},
    "worker": _BOTTOM | {"db", "core"},
    "maintenance": _BOTTOM | {"db", "core"},
    # The worker and the executor meet only at core.handler's contract.
    "execution": _BOTTOM | {"db", "core"},
    # The scheduler runs on maintenance's periodic loop; nothing else there.
    "resources": _BOTTOM | {"db", "core", "execution", "pgqueue.maintenance.service"},
    "cli": _BOTTOM | {"db", "observe", "core", "worker", "maintenance", "execution", "resources"},
    "facade": _PGQUEUE_ROOMS,
    "server": _PGQUEUE_ROOMS,
}


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the root, with forward slashes
    line: int
    importer: str  # the importing module's room
    target: str  # the imported module
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def room_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for room, prefixes in ROOMS.items():
        for prefix in prefixes:
            exact = prefix in EXACT
            if module == prefix or (not exact and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), room)
    return best[1] if best else None


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(root: Path, path: Path, tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in ``tree``, relative imports
    resolved, and ``from package import name`` read as the submodule when
    ``name`` is one."""
    this = module_name(root, path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep <= 0:
                    found.append((node.lineno, "." * node.level + (node.module or "")))
                    continue
                base = ".".join(parts[:keep])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if _is_module(root, sub) else source))
    return sorted(set(found))


def _ours(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PACKAGES)


def _allowed(room: str, target: str, target_room: str) -> bool:
    allowed = MAY_IMPORT[room]
    return (
        target_room == room
        or target_room in allowed
        or any(target == a or target.startswith(a + ".") for a in allowed if "." in a)
    )


def check(root: Path) -> list[Violation]:
    """Every import under ``root/pgqueue`` and ``root/server`` that breaks
    the table, and every module the table has no room for."""
    violations: list[Violation] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            module = module_name(root, path)
            room = room_of(module)
            if room is None:
                violations.append(
                    Violation(rel, 1, "?", module, f"{module} is in no room of the table")
                )
                continue
            tree = ast.parse(path.read_text(), filename=rel)
            for line, target in imported_modules(root, path, tree):
                if target.startswith(".") or not _ours(target):
                    if target.startswith("."):
                        rule = f"relative import {target} goes above the top package"
                        violations.append(Violation(rel, line, room, target, rule))
                    continue
                target_room = room_of(target)
                if target_room is None:
                    rule = f"{room} imports {target}, which is in no room of the table"
                elif not _allowed(room, target, target_room):
                    may = ", ".join(sorted(MAY_IMPORT[room])) or "nothing of pgqueue"
                    rule = f"{room} imports {target} ({target_room}); {room} may import: {may}"
                else:
                    continue
                violations.append(Violation(rel, line, room, target, rule))
    return violations


def _report(violations: list[Violation]) -> str:
    return "\n".join(str(v) for v in violations)


# -- the repository ----------------------------------------------------------


def test_every_import_follows_the_rule() -> None:
    violations = check(REPO)
    assert not violations, "imports across the rule:\n" + _report(violations)


def test_pgqueue_never_imports_server() -> None:
    violations = [
        v for v in check(REPO) if v.path.startswith("pgqueue/") and room_of(v.target) == "server"
    ]
    assert not violations, "pgqueue imports server:\n" + _report(violations)


def test_no_module_is_over_the_line_ceiling() -> None:
    long = {
        path.relative_to(REPO).as_posix(): n
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_table_names_every_room_it_refers_to() -> None:
    named = set(ROOMS)
    for room, allowed in MAY_IMPORT.items():
        assert room in named
        for entry in allowed:
            assert entry in named or room_of(entry) in named, (room, entry)
    assert set(MAY_IMPORT) == named


# -- the checker itself, on synthetic packages --------------------------------

# A small package in which every import is allowed.
LAWFUL: dict[str, str] = {
    "pgqueue/__init__.py": "from pgqueue.core import queue\nfrom pgqueue.worker import worker\n",
    "pgqueue/__main__.py": "from pgqueue.cli.main import main\n",
    "pgqueue/types.py": "import uuid\n",
    "pgqueue/errors.py": "from pgqueue.types import Lease\n",
    "pgqueue/db/__init__.py": "",
    "pgqueue/db/ids.py": "from ..errors import Invalid\n",
    "pgqueue/db/pools.py": "from . import ids\nfrom pgqueue import types\n",
    "pgqueue/core/__init__.py": "",
    "pgqueue/core/handler.py": "from typing import Protocol\n",
    "pgqueue/core/queue.py": "from pgqueue.db import ids\nfrom .handler import Handler\n",
    "pgqueue/worker/__init__.py": "",
    "pgqueue/worker/worker.py": "from pgqueue.core.handler import Handler\n",
    "pgqueue/maintenance/__init__.py": "",
    "pgqueue/maintenance/service.py": "import asyncio\n",
    "pgqueue/maintenance/sweeper.py": "from pgqueue.core import queue\nfrom .service import S\n",
    "pgqueue/execution/__init__.py": "",
    "pgqueue/execution/executor.py": "from ..core.handler import Handler\n",
    "pgqueue/resources/__init__.py": "",
    "pgqueue/resources/scheduler.py": (
        "from pgqueue.maintenance.service import S\n"
        "from pgqueue.maintenance import service\n"
        "from pgqueue.execution import executor\n"
    ),
    "pgqueue/cli/__init__.py": "",
    "pgqueue/cli/main.py": (
        "from pgqueue.worker.worker import Worker\n"
        "from pgqueue.maintenance.sweeper import Sweeper\n"
        "def run():\n    from pgqueue.resources import scheduler\n"
    ),
    "server/__init__.py": "",
    "server/app.py": "import pgqueue\nfrom pgqueue.cli import main\nfrom server import routes\n",
    "server/routes/__init__.py": "from .. import app\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_accepts_a_lawful_package(tmp_path: Path) -> None:
    _write(tmp_path, LAWFUL)
    assert check(tmp_path) == []


@pytest.mark.parametrize(
    ("path", "source", "line", "target", "says"),
    [
        # The library imports the app, lazily, inside a function.
        (
            "pgqueue/cli/main.py",
            "import os\n\n\ndef serve():\n    from server.main import run\n    run()\n",
            5,
            "server.main",
            "cli imports server.main (server)",
        ),
        # The database layer imports the facade to find its directory.
        (
            "pgqueue/db/migrate.py",
            "def here():\n    import pgqueue\n    return pgqueue.__file__\n",
            2,
            "pgqueue",
            "db imports pgqueue (facade)",
        ),
        # Peers: the worker reaches into maintenance.
        (
            "pgqueue/worker/worker.py",
            "from pgqueue.core.handler import Handler\nfrom pgqueue.maintenance import sweeper\n",
            2,
            "pgqueue.maintenance.sweeper",
            "worker imports pgqueue.maintenance.sweeper (maintenance)",
        ),
        # The executor meets the worker only at core.handler: a relative
        # import across rooms is caught as well.
        (
            "pgqueue/execution/executor.py",
            "from ..worker.worker import Worker\n",
            1,
            "pgqueue.worker.worker",
            "execution imports pgqueue.worker.worker (worker)",
        ),
        # resources may use maintenance's loop, not its services.
        (
            "pgqueue/resources/scheduler.py",
            "from pgqueue.maintenance.service import S\nfrom pgqueue.maintenance.sweeper import X\n",
            2,
            "pgqueue.maintenance.sweeper",
            "resources imports pgqueue.maintenance.sweeper (maintenance)",
        ),
        # The bottom imports nothing of pgqueue but types.
        (
            "pgqueue/errors.py",
            "from pgqueue.db import ids\n",
            1,
            "pgqueue.db.ids",
            "errors imports pgqueue.db.ids (db); errors may import: types",
        ),
        (
            "pgqueue/types.py",
            "from . import errors\n",
            1,
            "pgqueue.errors",
            "types imports pgqueue.errors (errors); types may import: nothing of pgqueue",
        ),
        # The facade may import any room of pgqueue, never the app.
        (
            "pgqueue/__main__.py",
            "import server.main\n",
            1,
            "server.main",
            "facade imports server.main (server)",
        ),
    ],
)
def test_the_checker_reports_exactly_the_forbidden_import(
    tmp_path: Path, path: str, source: str, line: int, target: str, says: str
) -> None:
    _write(tmp_path, {**LAWFUL, path: source, "server/main.py": ""})
    [violation] = check(tmp_path)
    assert (violation.path, violation.line, violation.target) == (path, line, target)
    assert says in violation.rule
    assert str(violation).startswith(f"{path}:{line}: ")


def test_the_checker_reports_a_module_outside_every_room(tmp_path: Path) -> None:
    _write(tmp_path, {**LAWFUL, "pgqueue/settings.py": "import os\n"})
    [violation] = check(tmp_path)
    assert violation.path == "pgqueue/settings.py"
    assert "pgqueue.settings is in no room" in violation.rule

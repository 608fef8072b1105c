"""Node.js for the JavaScript client tests: ``node`` and ``npm`` on PATH, and
tests/js's packages installed from its lock file (``npm ci``) when missing,
so a plain ``pytest`` passes on a fresh clone."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

from tests.support.system import require_system

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node() -> str:
    """The ``node`` executable; skips (or fails in CI) where Node.js is missing."""
    path = shutil.which("node")
    npm = shutil.which("npm")
    require_system(
        path is not None and npm is not None,
        "node and npm are not on PATH (Node.js 20 or later)",
        installs="them",
    )
    assert path is not None
    return path


def _installed() -> bool:
    """Every package pinned in package.json is in node_modules at its version."""
    manifest = json.loads((JS_DIR / "package.json").read_text())
    pinned = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
    for name, version in pinned.items():
        installed = JS_DIR / "node_modules" / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != version:
            return False
    return True


def ensure_packages() -> Path:
    """tests/js/node_modules as the lock file pins it; returns tests/js.

    xdist workers (and other test modules using the same packages) may get
    here at once: an exclusive lock on the lock file makes one run ``npm ci``
    and the others find its result."""
    node()
    npm = shutil.which("npm")
    assert npm is not None
    with open(JS_DIR / "package-lock.json") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _installed():
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=JS_DIR,
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                if done.returncode != 0:
                    raise RuntimeError(
                        f"npm ci in {JS_DIR} failed ({done.returncode}):\n"
                        f"{done.stdout}\n{done.stderr}"
                    )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return JS_DIR

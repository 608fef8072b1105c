"""The chaos soak's worker processes and its tally (tests/scenarios/test_chaos.py)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.chaos import ChaosEvent
from tests.support.procs import WorkerProcess


@dataclass
class Figures:
    runs: int = 0
    sigkills: int = 0
    sigstops: int = 0
    sigints: int = 0
    pg_restarts: int = 0
    pg_restart_modes: list[str] = field(default_factory=list)
    pg_outage_s: list[float] = field(default_factory=list)
    sigint_exit_codes: list[int] = field(default_factory=list)
    # SIGINTs that landed before the interpreter reached pgqueue's code (the
    # process printed nothing and died of the signal): Python cannot catch
    # a signal that early, and nothing had started.
    sigints_before_start: int = 0
    sigint_exit_s: list[float] = field(default_factory=list)
    unexpected_exits: list[dict[str, Any]] = field(default_factory=list)
    submit_retries: int = 0
    wall_s: float = 0.0
    settle_s: float = 0.0


def _before_start(code: int, log: str) -> bool:
    """A SIGINT that landed while the interpreter itself started, before
    pgqueue's code could catch it: the process died of the signal (or of a
    KeyboardInterrupt in the standard library's imports) having logged
    nothing of its own."""
    ours = ("INFO", "WARNING", "ERROR", "pgqueue:")
    if any(mark in log for mark in ours):
        return False
    return code == -signal.SIGINT or (code == 1 and "KeyboardInterrupt" in log)


class Fleet:
    """The worker processes, restarted like a supervisor would. Their logs
    are kept in ``log_dir`` (WorkerProcess deletes its own on close)."""

    def __init__(
        self, url: str, log_dir: Path, figures: Figures, flags: list[str], size: int
    ) -> None:
        self.url = url
        self.flags = flags
        self.size = size
        self.log_dir = log_dir
        self.figures = figures
        self.workers: list[WorkerProcess] = []
        self.busy: set[int] = set()  # slots frozen or shutting down
        self.events: list[ChaosEvent] = []
        self._generation = 0

    def start(self) -> None:
        self.workers = [self._spawn() for _ in range(self.size)]

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess(self.url, "graphs", *self.flags)

    def _retire(self, worker: WorkerProcess) -> None:
        self._generation += 1
        shutil.copy(
            worker.log_file.name, self.log_dir / f"worker-{self._generation:03d}-{worker.pid}.log"
        )
        worker.close()

    def replace(self, slot: int) -> None:
        self._retire(self.workers[slot])
        self.workers[slot] = self._spawn()

    def note(self, kind: str, pid: int | None = None) -> None:
        self.events.append(ChaosEvent(kind, datetime.now(UTC), pid))

    def free_slots(self) -> list[int]:
        return [i for i in range(len(self.workers)) if i not in self.busy]

    def check_alive(self) -> None:
        """A worker that died without being told to (it may exit on purpose
        when it cannot heartbeat) is restarted and recorded."""
        for slot in self.free_slots():
            worker = self.workers[slot]
            code = worker.proc.poll()
            if code is not None:
                # The whole log is kept in log_dir; its last lines say why.
                last = worker.log().strip().splitlines()[-3:]
                self.figures.unexpected_exits.append(
                    {"pid": worker.pid, "code": code, "last_lines": last}
                )
                self.replace(slot)

    async def sigkill(self, slot: int) -> None:
        worker = self.workers[slot]
        self.note("sigkill", worker.pid)
        worker.signal(signal.SIGKILL)
        await asyncio.to_thread(worker.proc.wait, 10)
        self.figures.sigkills += 1
        self.replace(slot)

    async def sigstop(self, slot: int, seconds: float) -> None:
        worker = self.workers[slot]
        self.busy.add(slot)
        try:
            self.note("sigstop", worker.pid)
            worker.signal(signal.SIGSTOP)
            self.figures.sigstops += 1
            await asyncio.sleep(seconds)
            worker.signal(signal.SIGCONT)
        finally:
            self.busy.discard(slot)

    async def sigint(self, slot: int) -> None:
        worker = self.workers[slot]
        self.busy.add(slot)
        try:
            self.note("sigint", worker.pid)
            started = time.monotonic()
            worker.signal(signal.SIGINT)
            try:
                code = await asyncio.to_thread(worker.proc.wait, 60)
            except subprocess.TimeoutExpired:
                code = -999  # a shutdown that hangs: recorded, then killed
            self.figures.sigints += 1
            if _before_start(code, worker.log()):
                self.figures.sigints_before_start += 1
            else:
                self.figures.sigint_exit_codes.append(code)
            self.figures.sigint_exit_s.append(round(time.monotonic() - started, 2))
            self.replace(slot)
        finally:
            self.busy.discard(slot)

    async def stop_all(self) -> list[int]:
        """SIGINT every worker (nothing is left to drain) and keep the logs."""
        codes = []
        for worker in self.workers:
            worker.signal(signal.SIGCONT)
            worker.signal(signal.SIGINT)
        for worker in self.workers:
            try:
                codes.append(await asyncio.to_thread(worker.proc.wait, 60))
            except subprocess.TimeoutExpired:
                codes.append(-999)
            self._retire(worker)
        return codes

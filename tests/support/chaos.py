"""Witnesses and checks for the chaos soak (tests/scenarios/test_chaos.py).

pgqueue's own fence decides, inside each writing transaction, whether a
lease still holds. The soak must not take the fence's word for it, so it
installs independent witnesses in its throwaway database and judges the
outcome afterwards from commit timestamps (``track_commit_timestamp``):

- ``chaos_transitions``: every change of a run's status, attempt or worker,
  written by a trigger in the changing transaction. A lease (run, attempt,
  worker) starts when the claim commits and ends when the run's next
  transition commits. Transitions of one run are serialized by its row lock,
  so their ids are in commit order.
- ``chaos_writes``: every row written to the checkpoint tables and to
  run_events, with the lease the writing session named (``pgqueue.lease``).

A write is fenced correctly when it committed inside the lease it named. A
node's result is durable from the first commit of its checkpoint writes or
of the checkpoint after it; no attempt that claimed the run later may run
that node again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})

WITNESS_SQL = """
CREATE TABLE chaos_transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL,
    old_status  text,
    new_status  text NOT NULL,
    old_attempt integer,
    new_attempt integer,
    old_worker  text,
    new_worker  text,
    releases    integer
);

CREATE FUNCTION chaos_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO chaos_transitions (run_id, new_status, new_attempt, new_worker, releases)
        VALUES (NEW.run_id, NEW.status, NEW.attempt, NEW.worker_id, NEW.releases);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO chaos_transitions (run_id, old_status, new_status, old_attempt,
                                       new_attempt, old_worker, new_worker, releases)
        VALUES (NEW.run_id, OLD.status, NEW.status, OLD.attempt, NEW.attempt,
                OLD.worker_id, NEW.worker_id, NEW.releases);
    ELSE
        INSERT INTO chaos_transitions (run_id, old_status, new_status, old_attempt, old_worker)
        VALUES (OLD.run_id, OLD.status, 'deleted', OLD.attempt, OLD.worker_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chaos_runs_rows AFTER INSERT OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION chaos_record_transition();
-- Heartbeats change none of these columns: they stay cheap (and HOT).
CREATE TRIGGER chaos_runs_changes AFTER UPDATE ON runs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.attempt IS DISTINCT FROM NEW.attempt
          OR OLD.worker_id IS DISTINCT FROM NEW.worker_id)
    EXECUTE FUNCTION chaos_record_transition();

CREATE TABLE chaos_writes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl           text NOT NULL,
    thread_id     text,
    run_id        uuid,
    checkpoint_id text,
    task_path     text,
    step          integer,
    attempt       integer,
    lease         text
);

CREATE FUNCTION chaos_witness_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lease text := nullif(current_setting('pgqueue.lease', true), '');
BEGIN
    IF TG_TABLE_NAME = 'checkpoints' THEN
        INSERT INTO chaos_writes (tbl, thread_id, run_id, checkpoint_id, step, attempt, lease)
        VALUES ('checkpoints', NEW.thread_id, (NEW.metadata->>'run_id')::uuid,
                NEW.checkpoint_id, (NEW.metadata->>'step')::int,
                (NEW.metadata->>'run_attempt')::int, lease);
    ELSIF TG_TABLE_NAME = 'checkpoint_writes' THEN
        INSERT INTO chaos_writes (tbl, thread_id, checkpoint_id, task_path, lease)
        VALUES ('checkpoint_writes', NEW.thread_id, NEW.checkpoint_id, NEW.task_path, lease);
    ELSE
        INSERT INTO chaos_writes (tbl, run_id, attempt, lease)
        VALUES ('run_events', NEW.run_id, NEW.attempt, lease);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chaos_witness AFTER INSERT OR UPDATE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION chaos_witness_write();
CREATE TRIGGER chaos_witness AFTER INSERT OR UPDATE ON checkpoint_writes
    FOR EACH ROW EXECUTE FUNCTION chaos_witness_write();
CREATE TRIGGER chaos_witness AFTER INSERT OR UPDATE ON run_events
    FOR EACH ROW EXECUTE FUNCTION chaos_witness_write();

-- The graph's side effects (tests/graphs/graphs.py: record_execution).
CREATE TABLE node_runs (
    run_id     text,
    node       text,
    attempt    integer,
    at         timestamptz DEFAULT clock_timestamp(),
    exec_id    uuid UNIQUE,
    pid        integer,
    started_at timestamptz
);

-- Chaos kills are not a run's fault: with the default of 3 attempts a run
-- that happened to sit on three killed workers (about 1 in 300 here) ends,
-- rightly, in MaxAttemptsExceeded, which is not what this soak is about.
-- The HTTP API has no max_attempts, so every new run gets a larger one.
CREATE FUNCTION chaos_more_attempts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.max_attempts := 50;
    RETURN NEW;
END
$$;
CREATE TRIGGER chaos_more_attempts BEFORE INSERT ON runs
    FOR EACH ROW EXECUTE FUNCTION chaos_more_attempts();
"""


@dataclass(frozen=True)
class Lease:
    run_id: UUID
    attempt: int
    worker_id: str
    start: datetime
    end: datetime | None  # None: still held when the soak looked
    ended_as: str | None  # the status the run went to when the lease ended

    @property
    def pid(self) -> int:
        # worker ids are host:pid:suffix (pgqueue/worker/worker.py)
        return int(self.worker_id.split(":")[-2])


@dataclass(frozen=True)
class ChaosEvent:
    kind: str  # "sigkill" | "sigstop" | "sigint" | "pg_restart"
    at: datetime
    pid: int | None = None


@dataclass
class Verdict:
    runs: int = 0
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.problems[kind].append(message)

    @property
    def duplicates(self) -> int:
        return sum(
            len(self.problems[k])
            for k in (
                "finished_twice",
                "node_ran_after_commit",
                "zombie_ran_committed_node",
                "node_ran_twice_in_one_attempt",
                "fenced_out_write",
                "checkpoint_fork",
                "output_mismatch",
            )
        )

    @property
    def lost(self) -> int:
        return len(self.problems["not_success"]) + len(self.problems["missing"])


async def analyse(
    conn: asyncpg.Connection,
    run_ids: list[UUID],
    nodes: tuple[str, ...],
    events: list[ChaosEvent],
) -> Verdict:
    """Judge every submitted run from the witnesses; see the module doc."""
    v = Verdict(runs=len(run_ids))
    runs = {
        r["run_id"]: r
        for r in await conn.fetch(
            "SELECT run_id, thread_id, status, attempt, releases, output, error FROM runs"
        )
    }
    transitions: dict[UUID, list[asyncpg.Record]] = defaultdict(list)
    for t in await conn.fetch(
        "SELECT *, pg_xact_commit_timestamp(xmin) AS committed FROM chaos_transitions ORDER BY id"
    ):
        transitions[t["run_id"]].append(t)
    leases = _leases(transitions)
    by_lease = {(le.run_id, le.attempt, le.worker_id): le for le in leases}
    leases_of: dict[UUID, list[Lease]] = defaultdict(list)
    for le in leases:
        leases_of[le.run_id].append(le)

    # -- outcomes ---------------------------------------------------------
    not_terminal = await conn.fetchval(
        "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')"
    )
    v.figures["left_pending_or_running"] = not_terminal
    for run_id in run_ids:
        run = runs.get(run_id)
        if run is None:
            v.add("missing", f"run {run_id}: no row")
            continue
        if run["status"] != "success":
            v.add("not_success", f"run {run_id}: {run['status']} {run['error']}")
        finishes = [
            t
            for t in transitions[run_id]
            if t["new_status"] in TERMINAL and t["old_status"] not in TERMINAL
        ]
        reopened = [t for t in transitions[run_id] if t["old_status"] in TERMINAL]
        if len(finishes) > 1 or reopened:
            v.add(
                "finished_twice", f"run {run_id}: {len(finishes)} finishes, {len(reopened)} after"
            )
        output = run["output"]
        log = _json(output).get("log") if output else None
        if run["status"] == "success" and log != list(nodes):
            v.add("output_mismatch", f"run {run_id}: output log {log}")

    # -- every witnessed write inside the lease it named ------------------
    writes = await conn.fetch(
        "SELECT *, pg_xact_commit_timestamp(xmin) AS committed FROM chaos_writes ORDER BY id"
    )
    unfenced: dict[str, int] = defaultdict(int)
    for w in writes:
        if w["lease"] is None:
            unfenced[w["tbl"]] += 1
            continue
        run_part, attempt_part, worker = w["lease"].split(":", 2)
        lease = by_lease.get((UUID(run_part), int(attempt_part), worker))
        where = f"{w['tbl']} write #{w['id']} under lease {w['lease']} at {w['committed']}"
        if lease is None:
            v.add("fenced_out_write", f"{where}: that lease never started")
        elif w["committed"] < lease.start or (lease.end is not None and w["committed"] > lease.end):
            v.add("fenced_out_write", f"{where}: outside [{lease.start}, {lease.end}]")
        elif w["attempt"] is not None and w["attempt"] != lease.attempt:
            v.add("fenced_out_write", f"{where}: carries attempt {w['attempt']}")
    v.figures["unfenced_writes"] = dict(unfenced)

    # -- checkpoint chains: linear, one checkpoint per step ---------------
    thread_of = {runs[r]["thread_id"]: r for r in run_ids if r in runs}
    chains: dict[UUID, list[asyncpg.Record]] = defaultdict(list)
    for c in await conn.fetch(
        "SELECT thread_id, parent_checkpoint_id, metadata FROM checkpoints WHERE checkpoint_ns = ''"
    ):
        chains[UUID(c["thread_id"])].append(c)
    for thread_id, run_id in thread_of.items():
        rows = chains.get(thread_id, [])
        parents = [c["parent_checkpoint_id"] for c in rows]
        steps = sorted(int(_json(c["metadata"]).get("step", -99)) for c in rows)
        # One root, no parent with two children, no step twice: a write by a
        # fenced-out attempt would branch off the chain its successor extends.
        if (
            parents.count(None) != 1
            or len(set(parents)) != len(parents)
            or len(set(steps)) != len(steps)
        ):
            v.add("checkpoint_fork", f"run {run_id}: parents {parents}, steps {steps}")
        elif runs[run_id]["status"] == "success" and steps != list(range(-1, len(nodes) + 1)):
            v.add("checkpoint_fork", f"run {run_id}: succeeded with steps {steps}")

    # -- node executions --------------------------------------------------
    durable = _durable_since(writes, thread_of, nodes)
    executions = await conn.fetch(
        "SELECT run_id::uuid AS run_id, node, attempt, pid, started_at FROM node_runs "
        "ORDER BY started_at"
    )
    _check_executions(v, executions, durable, leases_of)

    # -- attempts and recovery ---------------------------------------------
    swept = [r["attempt"] - r["releases"] - 1 for r in (runs[x] for x in run_ids if x in runs)]
    v.figures["max_failed_attempts_per_run"] = max(swept, default=0)
    v.figures["runs_with_a_retried_attempt"] = sum(1 for s in swept if s > 0)
    v.figures["handed_back_releases"] = sum(runs[x]["releases"] for x in run_ids if x in runs)
    v.figures["resume_wait_s"] = _resume_waits(events, leases_of)
    return v


def _durable_since(
    writes: list[asyncpg.Record], thread_of: dict[UUID, UUID], nodes: tuple[str, ...]
) -> dict[tuple[UUID, str], datetime]:
    """(run, node) -> when the node's result first committed: its task's
    checkpoint writes, or the checkpoint of the step after it (step k
    follows node k in a chain; LangGraph skips a node whose writes it finds)."""
    durable: dict[tuple[UUID, str], datetime] = {}
    for w in writes:
        if w["tbl"] == "checkpoint_writes" and w["task_path"]:
            node = w["task_path"].rsplit(", ", 1)[-1]
        elif w["tbl"] == "checkpoints" and w["step"] is not None and 1 <= w["step"] <= len(nodes):
            node = nodes[w["step"] - 1]
        else:
            continue
        run_id = thread_of.get(UUID(w["thread_id"]))
        if node in nodes and run_id is not None:
            key = (run_id, node)
            durable[key] = min(durable.get(key, w["committed"]), w["committed"])
    return durable


def _check_executions(
    v: Verdict,
    executions: list[asyncpg.Record],
    durable: dict[tuple[UUID, str], datetime],
    leases_of: dict[UUID, list[Lease]],
) -> None:
    per_attempt: dict[tuple[UUID, str, int], int] = defaultdict(int)
    first_attempt: dict[tuple[UUID, str], int] = {}
    repeated = zombies = 0
    zombie_pids: set[int] = set()
    for e in executions:
        run_id, node, attempt = e["run_id"], e["node"], e["attempt"]
        what = f"run {run_id} node {node} attempt {attempt} pid {e['pid']}"
        per_attempt[(run_id, node, attempt)] += 1
        if per_attempt[(run_id, node, attempt)] == 2:
            v.add("node_ran_twice_in_one_attempt", what)
        earlier = first_attempt.setdefault((run_id, node), attempt)
        repeated += per_attempt[(run_id, node, attempt)] == 1 and earlier != attempt
        lease = next(
            (le for le in leases_of[run_id] if le.attempt == attempt and le.pid == e["pid"]),
            None,
        )
        if lease is None:
            v.add("execution_without_lease", what)
            continue
        committed = durable.get((run_id, node))
        if lease.end is not None and e["started_at"] > lease.end:
            # Started after its worker was fenced out (frozen past its lease,
            # say): its writes are refused, but the side effect happened.
            zombies += 1
            zombie_pids.add(e["pid"])
            if committed is not None and committed < e["started_at"]:
                v.add(
                    "zombie_ran_committed_node",
                    f"{what} started {e['started_at']}, after its lease ended {lease.end} "
                    f"({lease.ended_as}); the node's result was durable since {committed}",
                )
        elif committed is not None and committed < lease.start:
            v.add(
                "node_ran_after_commit",
                f"{what}: durable since {committed}, attempt claimed {lease.start}",
            )
    v.figures["node_executions"] = len(executions)
    v.figures["nodes_repeated_across_attempts"] = repeated
    v.figures["zombie_executions"] = zombies
    v.figures["zombie_pids"] = sorted(zombie_pids)


def _leases(transitions: dict[UUID, list[asyncpg.Record]]) -> list[Lease]:
    leases = []
    for run_id, ts in transitions.items():
        for i, t in enumerate(ts):
            starts = t["new_status"] == "running" and (
                t["old_status"] != "running"
                or t["old_attempt"] != t["new_attempt"]
                or t["old_worker"] != t["new_worker"]
            )
            if not starts:
                continue
            nxt = ts[i + 1] if i + 1 < len(ts) else None
            leases.append(
                Lease(
                    run_id,
                    t["new_attempt"],
                    t["new_worker"],
                    t["committed"],
                    nxt["committed"] if nxt else None,
                    nxt["new_status"] if nxt else None,
                )
            )
    return leases


def _resume_waits(
    events: list[ChaosEvent], leases_of: dict[UUID, list[Lease]]
) -> dict[str, dict[str, float]]:
    """Per kind of event: how long the runs its victim held waited, from the
    event to their next claim elsewhere (max and mean, seconds)."""
    waits: dict[str, list[float]] = defaultdict(list)
    for ev in events:
        for leases in leases_of.values():
            for i, le in enumerate(leases):
                held = le.start <= ev.at and (le.end is None or le.end > ev.at)
                if not held or (ev.pid is not None and le.pid != ev.pid):
                    continue
                nxt = leases[i + 1] if i + 1 < len(leases) else None
                if nxt is not None:
                    waits[ev.kind].append((nxt.start - ev.at).total_seconds())
    return {
        kind: {"runs": len(w), "max": round(max(w), 2), "mean": round(sum(w) / len(w), 2)}
        for kind, w in waits.items()
    }


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return value if isinstance(value, dict) else {}

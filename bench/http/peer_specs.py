"""The servers under test: what each one installs, how it is started, what it
needs from the machine (a database, Redis).

langgraph dev and langhost each get a scratch venv of their own under
bench/.venvs/<peer>: their pinned langgraph-api versions differ (0.16.x for
the in-memory runtime, 0.11.x for langgraph-runtime-pg) and neither may see
pgqueue's packages. pgqueue runs from the repo's own venv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
GRAPH_DIR = Path(__file__).resolve().parent / "graph"
MARKER = ".bench-ready"

# Pinned so that a rerun months later measures the same servers; the marker
# file records the pins, and a change of pins rebuilds the venv.
LANGGRAPH_DEV_PACKAGES = (
    "langgraph-cli[inmem]==0.4.40",
    "langgraph-api==0.16.7",
    "langgraph-runtime-inmem==0.36.7",
    "langgraph==1.2.22",
)
LANGHOST_PACKAGES = (
    "langhost==0.11.1.post1",
    "langgraph-runtime-pg==0.11.1.post1",
    "langgraph==1.2.22",
)
PGQUEUE_REPORTED = ("langgraph", "langgraph-sdk", "langgraph-checkpoint-postgres", "psycopg")


@dataclass(frozen=True)
class Settings:
    """What every peer's command line and environment is built from."""

    admin_dsn: str
    redis_url: str
    jobs_per_worker: int
    log_level: str
    pgqueue_bin: str
    python: str
    # The `pgqueue` of another build (an earlier commit's venv), served as
    # the peer pgqueue-baseline: two builds side by side in one invocation.
    baseline_bin: str | None = None
    profile_svg: Path | None = None
    py_spy: str | None = None


@dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]  # empty: runs from the repo's venv
    reported: tuple[str, ...]  # distributions whose versions go into the JSON
    database: str | None = None  # created fresh before every start
    uses_redis: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # Not a competitor: a yardstick for the harness itself (no ratios).
    reference: bool = False
    # Serve with bench/http/graph/auth.py: authentication and authorization
    # on every request (pgqueue-auth, against pgqueue without).
    auth: bool = False
    # The benches it can serve: "api" (bench/http_api.py, create and join)
    # and "stream" (bench/http_stream.py, streamed runs).
    workloads: frozenset[str] = frozenset({"api", "stream"})

    @property
    def venv(self) -> Path | None:
        return VENVS / self.name if self.packages else None

    def python(self) -> str:
        return str(self.venv / "bin" / "python") if self.venv else sys.executable

    def database_url(self, s: Settings) -> str | None:
        if self.database is None:
            return None
        return urlunsplit(urlsplit(s.admin_dsn)._replace(path="/" + self.database))


PEERS: dict[str, Peer] = {
    "langgraph-dev": Peer(
        "langgraph-dev",
        LANGGRAPH_DEV_PACKAGES,
        ("langgraph-api", "langgraph-runtime-inmem", "langgraph-cli", "langgraph"),
    ),
    "langhost": Peer(
        "langhost",
        LANGHOST_PACKAGES,
        ("langhost", "langgraph-runtime-pg", "langgraph-api", "langgraph"),
        database="bench_langhost",
        uses_redis=True,
    ),
    "pgqueue": Peer("pgqueue", (), PGQUEUE_REPORTED, database="bench_pgqueue"),
    # The same with an Auth that stamps an owner and filters by it: what
    # authorization costs (issue 13's target: at most 10% more).
    "pgqueue-auth": Peer("pgqueue-auth", (), PGQUEUE_REPORTED, database="bench_pgqueue", auth=True),
    # `pgqueue serve` from --baseline-bin: is this build faster or slower?
    "pgqueue-baseline": Peer("pgqueue-baseline", (), (), database="bench_pgqueue"),
    # The same, as two processes: `pgqueue server` (HTTP) and one `pgqueue
    # worker`, so HTTP and graph execution use both cores.
    "pgqueue-split": Peer("pgqueue-split", (), PGQUEUE_REPORTED, database="bench_pgqueue"),
    # `pgqueue serve --workers 2`: two whole serve processes on one port
    # (server/prefork.py), each with --jobs-per-worker slots.
    "pgqueue-w2": Peer("pgqueue-w2", (), PGQUEUE_REPORTED, database="bench_pgqueue"),
    # A server that answers create and join at once and runs nothing
    # (instant_server.py): what the SDK clients alone can drive here.
    "instant": Peer(
        "instant", (), ("langgraph-sdk", "uvicorn"), reference=True, workloads=frozenset({"api"})
    ),
    # A server that runs the chat graph in its own process, in memory, and
    # streams its chunks as they come (floor_server.py): the least CPU per
    # streamed run a Python server can spend on that graph here.
    "floor": Peer(
        "floor",
        (),
        ("langgraph", "uvicorn", "orjson"),
        reference=True,
        workloads=frozenset({"stream"}),
    ),
}


def serving(workload: str) -> list[str]:
    """The peers that can serve ``workload`` ("api" or "stream")."""
    return [name for name, peer in PEERS.items() if workload in peer.workloads]


def ensure_venv(peer: Peer, python: str) -> None:
    """Create bench/.venvs/<peer> once; reuse it while its marker matches the pins."""
    venv = peer.venv
    if venv is None:
        return
    marker = venv / MARKER
    wanted = json.dumps(sorted(peer.packages))
    if marker.is_file() and marker.read_text() == wanted:
        return
    print(f"[{peer.name}] building venv {venv} (one time; a few minutes)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    proc = subprocess.run([*pip, *peer.packages], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install failed for {peer.name}:\n{proc.stderr[-3000:]}")
    # Written last: a venv whose install was interrupted is rebuilt next time.
    marker.write_text(wanted)


def installed_versions(peer: Peer) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run(
        [peer.python(), "-c", code, *peer.reported], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(proc.stdout)
    if peer.name.startswith("pgqueue"):
        versions["pgqueue"] = git_describe()
    return versions


def git_describe() -> str:
    proc = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


def write_config(workdir: Path, peer: Peer) -> Path:
    """langgraph.json for one server start, with the graph's paths made absolute.

    langgraph dev and langhost resolve graph paths against their working
    directory and write state there (langgraph dev's .langgraph_api), so each
    start gets a fresh scratch directory, while the graph file itself stays the
    single one in bench/http/graph.
    """
    raw = json.loads((GRAPH_DIR / "langgraph.json").read_text())
    graphs = {}
    for graph_id, spec in raw["graphs"].items():
        path, _, attr = spec.rpartition(":")
        graphs[graph_id] = f"{(GRAPH_DIR / path).resolve()}:{attr}"
    # langhost refuses a config without dependencies; the graph dir is the only one.
    config = {**raw, "graphs": graphs, "dependencies": [str(GRAPH_DIR)]}
    if peer.auth:
        config["auth"] = {"path": f"{(GRAPH_DIR / 'auth.py').resolve()}:auth"}
    target = workdir / "langgraph.json"
    target.write_text(json.dumps(config, indent=2))
    return target


def command(peer: Peer, s: Settings, config: Path, port: int) -> list[str]:
    port_s, jobs = str(port), str(s.jobs_per_worker)
    if peer.name == "langgraph-dev":
        exe = str(VENVS / peer.name / "bin" / "langgraph")
        return [
            exe, "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
            "--port", port_s, "--n-jobs-per-worker", jobs, "--config", str(config),
            "--server-log-level", s.log_level,
        ]  # fmt: skip
    if peer.name == "langhost":
        exe = str(VENVS / peer.name / "bin" / "langhost")
        return [
            exe, "serve", "--no-browser", "--host", "127.0.0.1", "--port", port_s,
            "--n-jobs-per-worker", jobs, "--config", str(config),
            "--server-log-level", s.log_level,
        ]  # fmt: skip
    if peer.name in ("instant", "floor"):
        script = str(Path(__file__).resolve().parent / f"{peer.name}_server.py")
        return [peer.python(), script, "--port", port_s, "--log-level", s.log_level]
    if peer.name == "pgqueue-split":
        # One process group: the bench's SIGINT reaches both.
        server = [s.pgqueue_bin, "server", "--config", str(config), "--host", "127.0.0.1",
                  "--port", port_s]  # fmt: skip
        worker = [s.pgqueue_bin, "worker", "--config", str(config), "--concurrency", jobs]
        script = (
            f"{shlex.join([s.pgqueue_bin, 'migrate'])} >/dev/null && "
            f"{{ {shlex.join(worker)} & }} && exec {shlex.join(server)}"
        )
        return ["sh", "-c", script]
    exe = s.baseline_bin if peer.name == "pgqueue-baseline" else s.pgqueue_bin
    if exe is None:
        raise RuntimeError("pgqueue-baseline needs --baseline-bin")
    cmd = [exe, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", port_s]
    if peer.name == "pgqueue-w2":
        cmd += ["--workers", "2"]
    if s.profile_svg is not None and s.py_spy is not None:
        # --subprocesses: the workers may live in child processes.
        # A .txt profile is py-spy's raw (collapsed stacks) format, to read as text.
        fmt = "raw" if s.profile_svg.suffix == ".txt" else "flamegraph"
        cmd = [
            s.py_spy,
            "record",
            "-o",
            str(s.profile_svg),
            "-f",
            fmt,
            "--subprocesses",
            "--",
            *cmd,
        ]
    return cmd


def environment(peer: Peer, s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    # The bench runs inside the repo's venv; a peer must see only its own.
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(name, None)
    if peer.venv is not None:
        env["PATH"] = f"{peer.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            # Nothing may leave the machine, and no request may wait on it.
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "LANGSMITH_TRACING": "false",
            "LANGCHAIN_TRACING_V2": "false",
            "PYTHONUNBUFFERED": "1",
            # Same log level and worker slots for every peer.
            "LOG_LEVEL": s.log_level.upper(),
            "PGQUEUE_LOG_LEVEL": s.log_level.upper(),
            "N_JOBS_PER_WORKER": str(s.jobs_per_worker),
            "PGQUEUE_CONCURRENCY": str(s.jobs_per_worker),
            # serve's access log (a line per request) only where the other
            # peers log requests too.
            "PGQUEUE_ACCESS_LOG": "1" if s.log_level.lower() in ("info", "debug") else "0",
        }
    )
    url = peer.database_url(s)
    if peer.name == "langhost":
        assert url is not None
        env["DATABASE_URI"] = url
        env["REDIS_URI"] = s.redis_url
    elif peer.name.startswith("pgqueue"):
        assert url is not None
        env["DATABASE_URL"] = url
    env.update(peer.extra_env)
    return env

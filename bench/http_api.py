"""HTTP benchmark: pgqueue's server beside `langgraph dev` and langhost, driven
through langgraph-sdk, one server at a time, the same one-node graph.

    . .venv/bin/activate
    python bench/http_api.py                       # all peers, defaults
    python bench/http_api.py --peers langgraph-dev,langhost --sequential 50 --concurrent-runs 200

Peers (bench/http/peer_specs.py):
  langgraph-dev  `langgraph dev` (langgraph-api + in-memory runtime)
  langhost       `langhost serve` (langgraph-api + langgraph-runtime-pg: PostgreSQL + Redis)
  pgqueue        `pgqueue serve` from this repo's venv (PostgreSQL only)
  pgqueue-split  `pgqueue server` + `pgqueue worker`, two processes
  pgqueue-w2     `pgqueue serve --workers 2`: two serve processes on one port
  pgqueue-auth   `pgqueue serve` with an Auth (bench/http/graph/auth.py) that
                 authenticates every request, stamps an owner and filters
                 every read by it: pgqueue-auth / pgqueue is its cost
  pgqueue-baseline  `pgqueue serve` from --baseline-bin (another build's venv)
  instant        not a peer: a server that answers create and join at once
                 and runs nothing (bench/http/instant_server.py), the most
                 the SDK clients can drive on this machine; no ratios

The first two are installed by this script into scratch venvs under
bench/.venvs/<peer> (pinned; reused while their marker file matches). Each
server start gets a fresh database (bench_langhost / bench_pgqueue) and, for
langhost, an emptied Redis db (--redis-url, db 13 by default).

Measured per peer and round, after a warmup:
  sequential  one client: create + join one run at a time, a thread per run;
              p50/p90/p99 latency
  concurrent  --clients tasks, each with its own SDK client and thread,
              create + join until --concurrent-runs are done; runs/s
Rounds (--repeat) are interleaved across peers, so drift in the shared
machine's load hits every peer alike; the table shows medians. A peer whose
server does not come up is skipped with the reason, and the others go on.
Results: bench/results/http_api-<timestamp>.json (per round, medians, and
pgqueue / best other peer). --profile wraps pgqueue in py-spy and writes
bench/results/http_pgqueue.svg (its figures are then not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http holds the helpers; not a package, so that it cannot shadow the
# standard library's `http` (python puts bench/ itself on sys.path).
sys.path.insert(0, str(HERE / "http"))

import bench_report  # noqa: E402
import sdk_load  # noqa: E402
from peer_process import Server, StartupError  # noqa: E402
from peer_specs import (  # noqa: E402
    PEERS,
    REPO,
    Peer,
    Settings,
    ensure_venv,
    installed_versions,
    serving,
)

RESULTS = HERE / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--peers",
        default=",".join(serving("api")),
        help="comma-separated, from: " + ", ".join(serving("api")),
    )
    p.add_argument(
        "--sequential", type=int, default=200, help="timed sequential runs (default 200)"
    )
    p.add_argument(
        "--warmup", type=int, default=10, help="untimed sequential runs first (default 10)"
    )
    p.add_argument(
        "--concurrent-runs", type=int, default=400, help="timed concurrent runs (default 400)"
    )
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    p.add_argument(
        "--thread-per-run",
        action="store_true",
        help="concurrent phase: a fresh thread for every run (default: one per client)",
    )
    p.add_argument("--warmup-per-client", type=int, default=2, help="untimed runs per client first")
    p.add_argument("--repeat", type=int, default=1, help="rounds, interleaved across peers")
    p.add_argument("--profile", action="store_true", help="run pgqueue under py-spy record")
    p.add_argument(
        "--profile-raw",
        action="store_true",
        help="with --profile: collapsed stacks (.txt), not SVG",
    )
    p.add_argument(
        "--jobs-per-worker", type=int, default=10, help="run slots per server (default 10)"
    )
    add_server_options(p, "http_api")
    args = p.parse_args(argv)
    args.peer_names = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in args.peer_names if name not in serving("api")]
    if unknown or not args.peer_names:
        p.error(f"unknown peer(s) {unknown}; choose from {', '.join(serving('api'))}")
    return args


def add_server_options(p: argparse.ArgumentParser, bench: str) -> None:
    """The options of every peer's server and of the results file, shared
    by the HTTP benches (this one and http_stream.py)."""
    p.add_argument("--server-log-level", default="warning", help="every server's log level")
    p.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/13", help="emptied before langhost starts"
    )
    p.add_argument("--pgqueue-bin", default=default_pgqueue_bin())
    p.add_argument(
        "--baseline-bin",
        help="another build's pgqueue command, served as the peer pgqueue-baseline",
    )
    p.add_argument("--python", default=sys.executable, help="interpreter that makes the peer venvs")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to a 200 from /ok")
    p.add_argument(
        "--stop-timeout", type=float, default=20.0, help="seconds from SIGINT to SIGKILL"
    )
    p.add_argument(
        "--output", type=Path, help=f"JSON path (default bench/results/{bench}-<ts>.json)"
    )


def default_pgqueue_bin() -> str:
    local = REPO / ".venv" / "bin" / "pgqueue"
    return str(local) if local.exists() else (shutil.which("pgqueue") or str(local))


def settings_for(args: argparse.Namespace) -> Settings:
    svg = py_spy = None
    if args.profile:
        py_spy = shutil.which(
            "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        )
        if py_spy is None:
            sys.exit("--profile needs py-spy: pip install py-spy (it is in the 'bench' extra)")
        svg = RESULTS / ("http_pgqueue.txt" if args.profile_raw else "http_pgqueue.svg")
    return Settings(
        admin_dsn=args.admin_dsn,
        redis_url=args.redis_url,
        jobs_per_worker=args.jobs_per_worker,
        log_level=args.server_log_level,
        pgqueue_bin=args.pgqueue_bin,
        baseline_bin=args.baseline_bin,
        python=args.python,
        profile_svg=svg,
        py_spy=py_spy,
    )


def prepare(peers: list[Peer], s: Settings, skipped: dict[str, str]) -> dict[str, dict[str, str]]:
    """Build missing venvs; a peer that cannot be installed is skipped, not fatal."""
    versions: dict[str, dict[str, str]] = {}
    for peer in peers:
        try:
            if peer.name.startswith("pgqueue") and not Path(s.pgqueue_bin).exists():
                raise RuntimeError(
                    f"{s.pgqueue_bin} not found (pip install -e . in the repo's venv)"
                )
            ensure_venv(peer, s.python)
            versions[peer.name] = installed_versions(peer)
        except Exception as exc:  # any failure here only takes this peer out
            skip(skipped, peer.name, f"setup failed: {exc}")
    return versions


def skip(skipped: dict[str, str], name: str, reason: str) -> None:
    skipped[name] = reason
    print(f"[{name}] SKIPPED: {reason}", flush=True)


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    seq = await sdk_load.sequential(url, args.sequential, args.warmup)
    conc = await sdk_load.concurrent(
        url, args.concurrent_runs, args.clients, args.warmup_per_client, args.thread_per_run
    )
    return {"sequential": seq, "concurrent": conc}


def run_round(peer: Peer, s: Settings, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Start the server, measure, stop it. StartupError propagates (the peer is skipped)."""
    if s.profile_svg is not None and args.repeat > 1:
        s = dataclasses.replace(s, profile_svg=RESULTS / f"http_pgqueue-r{n}.svg")
    server = Server(peer, s, args.startup_timeout, args.stop_timeout)
    print(f"[{peer.name}] round {n}: starting", flush=True)
    # The machine is shared: the load before each round tells a noisy figure apart.
    load = round(os.getloadavg()[0], 2)
    server.start()
    result: dict[str, Any] = {"round": n, "loadavg_1m": load}
    try:
        result.update(asyncio.run(measure(server.url, args)))
        seq, conc = result["sequential"], result["concurrent"]
        print(
            f"[{peer.name}] round {n}: sequential p50 {seq['p50_ms']} ms, p99 {seq['p99_ms']} ms;"
            f" {conc['runs_per_s']} runs/s with {conc['clients']} clients",
            flush=True,
        )
    except Exception as exc:  # a failed measurement is recorded; the bench goes on
        detail = "".join(traceback.format_exception_only(exc)).strip()
        print(f"[{peer.name}] round {n}: FAILED: {detail}\n{server.log_tail()}", flush=True)
        result["error"] = detail
    finally:
        result["stop"] = server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    s = settings_for(args)
    peers = [PEERS[name] for name in args.peer_names]
    skipped: dict[str, str] = {}
    versions = prepare(peers, s, skipped)
    rounds: dict[str, list[dict[str, Any]]] = {p.name: [] for p in peers if p.name not in skipped}
    for n in range(1, args.repeat + 1):
        for peer in peers:
            if peer.name in skipped:
                continue
            try:
                rounds[peer.name].append(run_round(peer, s, args, n))
            except StartupError as exc:
                skip(skipped, peer.name, f"server did not come up: {exc}")
    summaries = {
        name: summary for name, rs in rounds.items() if (summary := bench_report.summarize(rs))
    }
    references = [name for name in summaries if PEERS[name].reference]
    rel = bench_report.ratios(summaries, references)
    ceilings = bench_report.ceiling(summaries, references)
    auth = bench_report.auth_cost(summaries)
    print()
    not_measured = {**skipped, **bench_report.failures(rounds)}
    print(bench_report.render(summaries, not_measured, rel, args, ceilings, auth))
    out = args.output or RESULTS / f"http_api-{stamp}.json"
    out.write_text(
        json.dumps(
            document(args, stamp, versions, rounds, summaries, skipped, rel, ceilings, auth),
            indent=2,
        )
    )
    print(f"\nwrote {out}")
    return 0 if summaries else 1


def results_header(bench: str, stamp: str, args: argparse.Namespace) -> dict[str, Any]:
    """What every HTTP bench's results file starts with: which bench, when,
    on what machine, with which options."""
    return {
        "benchmark": bench,
        "started": stamp,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "profiled": args.profile,
    }


def document(
    args: argparse.Namespace,
    stamp: str,
    versions: dict[str, dict[str, str]],
    rounds: dict[str, list[dict[str, Any]]],
    summaries: dict[str, dict[str, Any]],
    skipped: dict[str, str],
    rel: dict[str, Any],
    ceilings: dict[str, Any],
    auth: dict[str, Any],
) -> dict[str, Any]:
    return {
        **results_header("http_api", stamp, args),
        "peers": {
            name: {"versions": versions.get(name, {}), "rounds": rs, "summary": summaries.get(name)}
            for name, rs in rounds.items()
        },
        "skipped": skipped,
        "pgqueue_vs_best": rel,
        "clients_ceiling": ceilings,
        "auth_cost": auth,
    }


if __name__ == "__main__":
    sys.exit(main())

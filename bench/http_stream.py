"""Streaming benchmark: streamed agent runs through pgqueue's server beside
`langgraph dev` (and langhost, ...), one server at a time, the same graph.

    . .venv/bin/activate
    python bench/http_stream.py                                  # langgraph-dev, pgqueue
    python bench/http_stream.py --peers langgraph-dev,langhost,pgqueue,pgqueue-split --repeat 3
    python bench/http_stream.py --clients 5 --runs 2 --repeat 1  # a smoke test

The workload (issue 14): the "chat" graph (bench/http/graph/stream_graph.py),
one node whose BaseChatModel streams 100 tokens, one every 20 ms (an ideal
run takes 2 s). C clients (asyncio tasks, each its own langgraph-sdk client)
each loop `threads.create`, then `runs.stream(thread_id, "chat",
stream_mode="messages-tuple")` to the stream's end, --runs times: --runs is
per client, so a round is C x --runs streamed runs (default 10: about 25-30 s
at 20 clients, where a run takes 2.5-3 s; 1000 runs, 1-1.5 min, at 100
clients, which keeps 100 streams open throughout). Every client first streams
--warmup untimed runs.

Measured per peer, client count and round (bench/http/stream_load.py):
  server CPU per run  the machine's busy CPU (/proc/stat) over the timed
                      phase minus this process's own CPU, / runs: the server's
                      processes and PostgreSQL (and Redis for langhost)
  TTFT p50/p99        request sent -> the first `messages` event with a token
  run time p50/p99    request sent -> the stream's end
  runs/s              runs / the timed phase's wall time
  server process CPU  the server's own process group only (/proc/<pid>/stat;
                      no PostgreSQL): a check on the first figure, which other
                      load on the machine inflates (JSON and the "proc" column)
  run_events rows and bytes per run
                      on a peer whose database has a run_events table
                      (pgqueue*): count(*) and sum(pg_column_size) after the
                      timed phase minus before it, / runs
Every stream must carry all 100 token chunks; a round with a stream that
did not is reported as failed (its figures are kept in the JSON).

The peer "floor" (bench/http/floor_server.py) is no competitor: it runs the
graph in its own process, in memory, and writes each chunk to the SSE stream
as it comes, with no queue, database or framework: the least server CPU per
streamed run that this graph and an HTTP stream cost here.

Every server start gets a fresh database; each peer gets --n-jobs-per-worker
job slots (100: `langgraph dev --n-jobs-per-worker`, pgqueue's concurrency).
Rounds (--repeat) are interleaved across peers and client counts, so drift
in the machine's load hits every peer alike; tables show medians, with the
ratios of each pgqueue peer to each other peer (below 1 is better, except
runs/s). Results: bench/results/http_stream-<timestamp>.json. Peers and their
scratch venvs: see bench/http_api.py and bench/http/peer_specs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/http holds the helpers; not a package (see http_api.py).
sys.path.insert(0, str(HERE / "http"))

import http_api  # noqa: E402
import stream_load  # noqa: E402
import stream_report  # noqa: E402
from peer_process import Server, StartupError  # noqa: E402
from peer_specs import PEERS, Peer, Settings, serving  # noqa: E402

RESULTS = HERE / "results"
STREAM_PEERS = serving("stream")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--peers",
        default="langgraph-dev,pgqueue",
        help="comma-separated, from: " + ", ".join(STREAM_PEERS),
    )
    p.add_argument(
        "--clients", default="20,100", help="concurrent clients, comma-separated (default 20,100)"
    )
    p.add_argument(
        "--runs", type=int, default=10, help="timed streamed runs per client (default 10)"
    )
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per client first")
    p.add_argument("--repeat", type=int, default=1, help="rounds, interleaved across peers")
    p.add_argument(
        "--n-jobs-per-worker",
        type=int,
        default=100,
        help="job slots of every peer (default 100; pgqueue's concurrency)",
    )
    p.add_argument(
        "--run-timeout", type=float, default=120.0, help="seconds one stream may take at most"
    )
    p.add_argument("--profile", action="store_true", help="run pgqueue under py-spy record")
    http_api.add_server_options(p, "http_stream")
    args = p.parse_args(argv)
    args.peer_names = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = [name for name in args.peer_names if name not in STREAM_PEERS]
    if unknown or not args.peer_names:
        p.error(f"unknown peer(s) {unknown}; choose from {', '.join(STREAM_PEERS)}")
    try:
        args.client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        p.error(f"--clients: a comma-separated list of numbers, not {args.clients!r}")
    if not args.client_counts or min(args.client_counts) < 1 or args.runs < 1:
        p.error("--clients and --runs must be at least 1")
    # The names http_api.settings_for reads.
    args.jobs_per_worker = args.n_jobs_per_worker
    return args


def settings_for(args: argparse.Namespace) -> Settings:
    s = http_api.settings_for(args)
    if s.profile_svg is not None:
        s = dataclasses.replace(s, profile_svg=RESULTS / "http_stream_pgqueue.svg")
    return s


def run_round(
    peer: Peer, s: Settings, args: argparse.Namespace, clients: int, n: int
) -> dict[str, Any]:
    """Start the server, stream, stop it. StartupError propagates (the peer is skipped)."""
    if s.profile_svg is not None:
        s = dataclasses.replace(s, profile_svg=RESULTS / f"http_stream_pgqueue-c{clients}-r{n}.svg")
    server = Server(peer, s, args.startup_timeout, args.stop_timeout)
    print(f"[{peer.name}] {clients} clients, round {n}: starting", flush=True)
    # The machine is shared: the load before each round tells a noisy figure apart.
    load = round(os.getloadavg()[0], 2)
    server.start()
    result: dict[str, Any] = {"round": n, "loadavg_1m": load}
    dsn = peer.database_url(s)
    counter = stream_load.run_events_counter(dsn) if dsn else None
    try:
        result.update(
            asyncio.run(
                stream_load.measure(
                    server.url,
                    clients,
                    args.runs,
                    args.warmup,
                    args.run_timeout,
                    counter,
                    server.proc.pid if server.proc else None,
                )
            )
        )
        if result["bad_streams"]:
            result["error"] = (
                f"{result['bad_streams']} of {result['runs']} streams incomplete,"
                f" e.g. {result['bad_example']}"
            )
        print(f"[{peer.name}] {clients} clients, round {n}: {brief(result)}", flush=True)
    except Exception as exc:  # a failed measurement is recorded; the bench goes on
        detail = "".join(traceback.format_exception_only(exc)).strip()
        print(
            f"[{peer.name}] {clients} clients, round {n}: FAILED: {detail}\n{server.log_tail()}",
            flush=True,
        )
        result["error"] = detail
    finally:
        result["stop"] = server.stop()
    return result


def brief(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"FAILED: {r['error']}"
    return (
        f"{r['runs_per_s']} runs/s, server CPU {r['server_cpu_ms_per_run']} ms/run,"
        f" TTFT p50 {r['ttft']['p50_ms']} ms, run p50 {r['run']['p50_ms']} ms"
        + (
            f", {r['run_events_rows_per_run']} run_events rows/run,"
            f" {r['commits_per_run']} commits/run"
            if "run_events_rows_per_run" in r
            else ""
        )
    )


def failures(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Peers that came up but completed no round: their first error."""
    return {
        name: rs[0]["error"] for name, rs in rounds.items() if rs and all("error" in r for r in rs)
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    s = settings_for(args)
    peers = [PEERS[name] for name in args.peer_names]
    skipped: dict[str, str] = {}
    versions = http_api.prepare(peers, s, skipped)
    # rounds[clients][peer] -> the rounds measured
    rounds: dict[int, dict[str, list[dict[str, Any]]]] = {
        c: {p.name: [] for p in peers if p.name not in skipped} for c in args.client_counts
    }
    for n in range(1, args.repeat + 1):
        for clients in args.client_counts:
            for peer in peers:
                if peer.name in skipped:
                    continue
                try:
                    rounds[clients][peer.name].append(run_round(peer, s, args, clients, n))
                except StartupError as exc:
                    http_api.skip(skipped, peer.name, f"server did not come up: {exc}")
    by_clients: dict[str, Any] = {}
    for clients, per_peer in rounds.items():
        summaries = {
            name: summary
            for name, rs in per_peer.items()
            if (summary := stream_report.summarize(rs))
        }
        rel = stream_report.ratios(summaries)
        not_measured = {**skipped, **failures(per_peer)}
        print()
        print(stream_report.render(clients, summaries, not_measured, rel, args))
        by_clients[str(clients)] = {
            "peers": {
                name: {"rounds": rs, "summary": summaries.get(name)}
                for name, rs in per_peer.items()
            },
            "ratios": rel,
            "lowest_latency": stream_report.best_latency(summaries),
            "not_measured": not_measured,
        }
    out = args.output or RESULTS / f"http_stream-{stamp}.json"
    out.write_text(json.dumps(document(args, stamp, versions, by_clients, skipped), indent=2))
    print(f"\nwrote {out}")
    measured = any(v["summary"] for entry in by_clients.values() for v in entry["peers"].values())
    return 0 if measured else 1


def document(
    args: argparse.Namespace,
    stamp: str,
    versions: dict[str, dict[str, str]],
    by_clients: dict[str, Any],
    skipped: dict[str, str],
) -> dict[str, Any]:
    return {
        **http_api.results_header("http_stream", stamp, args),
        "workload": {
            "graph": stream_load.GRAPH,
            "tokens_per_run": stream_load.TOKENS,
            "token_interval_s": 0.02,
            "stream_mode": "messages-tuple",
            "runs": "per client",
        },
        "versions": versions,
        "by_clients": by_clients,
        "skipped": skipped,
    }


if __name__ == "__main__":
    sys.exit(main())

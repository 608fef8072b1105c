"""The streaming benchmark's figures: medians over rounds, pgqueue against
each other peer, the printed table (one per client count)."""

from __future__ import annotations

import statistics
from typing import Any

from bench_report import headline

# (summary key, where it is in a round, lower is better)
FIGURES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("server_cpu_ms_per_run", ("server_cpu_ms_per_run",), True),
    ("server_process_cpu_ms_per_run", ("server_process_cpu_ms_per_run",), True),
    ("db_cpu_ms_per_run", ("db_cpu_ms_per_run",), True),
    ("ttft_p50_ms", ("ttft", "p50_ms"), True),
    ("ttft_p99_ms", ("ttft", "p99_ms"), True),
    ("run_p50_ms", ("run", "p50_ms"), True),
    ("run_p99_ms", ("run", "p99_ms"), True),
    ("runs_per_s", ("runs_per_s",), False),
    ("run_events_rows_per_run", ("run_events_rows_per_run",), True),
    ("run_events_bytes_per_run", ("run_events_bytes_per_run",), True),
)
# Only the peers with a run_events table have these: no ratio against one without.
PGQUEUE_ONLY = {"run_events_rows_per_run", "run_events_bytes_per_run"}


def _get(r: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(r, dict) or key not in r:
            return None
        r = r[key]
    return r


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Median of each figure over the rounds that completed; None if none did."""
    good = [r for r in rounds if "error" not in r]
    if not good:
        return None
    summary: dict[str, Any] = {"rounds": len(good)}
    for key, path, _ in FIGURES:
        values = [v for r in good if (v := _get(r, path)) is not None]
        summary[key] = round(statistics.median(values), 2) if values else None
    return summary


def ratios(summaries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"pgqueue / langgraph-dev": {figure: ratio}} for every pgqueue peer
    against every other peer. Below 1 is better, except runs_per_s."""
    ours = [k for k in summaries if k.startswith("pgqueue")]
    theirs = [k for k in summaries if not k.startswith("pgqueue")]
    out: dict[str, dict[str, Any]] = {}
    for a in ours:
        for b in theirs:
            out[f"{a} / {b}"] = {
                key: (
                    round(summaries[a][key] / summaries[b][key], 3)
                    if summaries[a][key] is not None and summaries[b][key]
                    else None
                )
                for key, _, _ in FIGURES
                if key not in PGQUEUE_ONLY
            }
    return out


def best_latency(summaries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Who has the lowest TTFT p50/p99 and run time p50: the issue's target
    at 100 clients is pgqueue lower than every peer."""
    out = {}
    for key in ("ttft_p50_ms", "ttft_p99_ms", "run_p50_ms"):
        ranked = sorted((s[key], name) for name, s in summaries.items() if s[key] is not None)
        if ranked:
            out[key] = ranked[0][1]
    return out


def _num(v: Any, fmt: str, width: int) -> str:
    return f"{v:>{width}{fmt}}" if v is not None else f"{'-':>{width}}"


def render(
    clients: int,
    summaries: dict[str, dict[str, Any]],
    not_measured: dict[str, str],
    rel: dict[str, dict[str, Any]],
    args: Any,
) -> str:
    head = (
        f"{'peer':<15} {'cpu/run':>8} {'proc':>7} {'db':>6} {'ttft p50':>9} {'ttft p99':>9} {'run p50':>8}"
        f" {'run p99':>8} {'runs/s':>7} {'ev rows':>8} {'ev KB':>7} {'rounds':>6}"
    )
    lines = [
        f"{clients} clients x {args.runs} streamed runs each ({clients * args.runs} per round),"
        f" {args.n_jobs_per_worker} job slots per peer; medians over {args.repeat} round(s)."
        " cpu/run: server CPU ms per run (machine busy CPU minus the clients' own);"
        " proc: the server's own processes' CPU ms per run (no PostgreSQL);"
        " db: PostgreSQL's and Redis's processes' CPU ms per run;"
        " ttft in ms; run time in s; ev rows / ev KB: run_events rows and KB per run",
        head,
        "-" * len(head),
    ]
    for name, s in summaries.items():
        kb = s["run_events_bytes_per_run"]
        lines.append(
            f"{name:<15} {_num(s['server_cpu_ms_per_run'], '.1f', 8)}"
            f" {_num(s['server_process_cpu_ms_per_run'], '.1f', 7)}"
            f" {_num(s['db_cpu_ms_per_run'], '.1f', 6)}"
            f" {_num(s['ttft_p50_ms'], '.0f', 9)} {_num(s['ttft_p99_ms'], '.0f', 9)}"
            f" {_num(_sec(s['run_p50_ms']), '.2f', 8)} {_num(_sec(s['run_p99_ms']), '.2f', 8)}"
            f" {_num(s['runs_per_s'], '.1f', 7)} {_num(s['run_events_rows_per_run'], '.1f', 8)}"
            f" {_num(kb / 1024 if kb is not None else None, '.1f', 7)} {s['rounds']:>6}"
        )
    for name, reason in not_measured.items():
        lines.append(f"{name:<15} not measured: {headline(reason)}")
    for pair, r in rel.items():
        figures = ", ".join(
            f"{key.removesuffix('_ms').removesuffix('_per_run')} {v}x"
            for key, v in r.items()
            if v is not None
        )
        lines.append(f"  {pair}: {figures}")
    if best := best_latency(summaries):
        lines.append("  lowest: " + ", ".join(f"{k} {v}" for k, v in best.items()))
    return "\n".join(lines)


def _sec(ms: float | None) -> float | None:
    return ms / 1000 if ms is not None else None

"""Medians over rounds, pgqueue against the best other peer, the printed table."""

from __future__ import annotations

import statistics
from collections.abc import Collection
from typing import Any

# (section, key, lower is better)
FIGURES = (
    ("sequential", "p50_ms", True),
    ("sequential", "p90_ms", True),
    ("sequential", "p99_ms", True),
    ("concurrent", "runs_per_s", False),
    ("concurrent", "p50_ms", True),
    ("concurrent", "p99_ms", True),
    ("concurrent", "server_cpu_ms_per_run", True),
)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Median of each figure over the rounds that completed; None if none did."""
    good = [r for r in rounds if "error" not in r]
    if not good:
        return None
    summary: dict[str, Any] = {"rounds": len(good)}
    for section, key, _ in FIGURES:
        values = [r[section][key] for r in good if key in r[section]]
        # Results saved before a figure existed lack it.
        summary[f"{section}_{key}"] = round(statistics.median(values), 2) if values else None
    return summary


def ratios(
    summaries: dict[str, dict[str, Any]], references: Collection[str] = ()
) -> dict[str, Any]:
    """Each pgqueue configuration / the best other peer, figure by figure.
    ``references`` (the instant server) are yardsticks, not peers.

    Throughput: above 1 means pgqueue is faster. Latency: below 1 means
    pgqueue answers sooner.
    """
    others = {
        k: v for k, v in summaries.items() if not k.startswith("pgqueue") and k not in references
    }
    if not others:
        return {}
    out: dict[str, Any] = {}
    for ours in (k for k in summaries if k.startswith("pgqueue")):
        for section, key, lower_better in FIGURES:
            field = f"{section}_{key}"
            ranked = sorted((others[name][field], name) for name in others)
            theirs, best = ranked[0] if lower_better else ranked[-1]
            out[f"{ours}: {field}"] = {
                "best_peer": best,
                "best_value": theirs,
                "pgqueue": summaries[ours][field],
                "ratio": round(summaries[ours][field] / theirs, 3) if theirs else None,
            }
    return out


def auth_cost(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """pgqueue-auth / pgqueue, figure by figure: what an Auth that
    authenticates every request and filters every read costs (1.10 is
    10% more time or CPU; for runs/s, 0.90 is 10% fewer)."""
    if "pgqueue" not in summaries or "pgqueue-auth" not in summaries:
        return {}
    off, on = summaries["pgqueue"], summaries["pgqueue-auth"]
    out: dict[str, Any] = {}
    for section, key, _ in FIGURES:
        field = f"{section}_{key}"
        if off[field] and on[field] is not None:
            out[field] = {
                "off": off[field],
                "on": on[field],
                "ratio": round(on[field] / off[field], 3),
            }
    return out


def ceiling(
    summaries: dict[str, dict[str, Any]], references: Collection[str], factor: float = 5.0
) -> dict[str, Any]:
    """What the clients alone can drive (a reference server that costs
    nothing) beside ``factor`` times the best peer's throughput: a target
    above the ceiling cannot be shown on this machine by any server."""
    field = "concurrent_runs_per_s"
    peers = [v[field] for k, v in summaries.items() if not k.startswith("pgqueue")
             and k not in references]  # fmt: skip
    out: dict[str, Any] = {}
    for name in references:
        if name in summaries:
            out[name] = {
                "ceiling_runs_per_s": summaries[name][field],
                "target_runs_per_s": round(factor * max(peers), 1) if peers else None,
                "factor": factor,
            }
    return out


def failures(rounds: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Peers that came up but completed no round: their first error."""
    return {
        name: rs[0]["error"] for name, rs in rounds.items() if rs and all("error" in r for r in rs)
    }


def headline(reason: str, width: int = 160) -> str:
    """One line for the table: the reason, and the log's last line if it ends
    in a log tail (the full text is printed above and kept in the JSON)."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("(full log:")]
    text = lines[0] if lines else reason
    if len(lines) > 1 and text.endswith(":"):
        text = f"{text} ... {lines[-1]}"
    return text[:width]


def render(
    summaries: dict[str, dict[str, Any]],
    not_measured: dict[str, str],
    rel: dict[str, Any],
    args: Any,
    ceilings: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
) -> str:
    head = (
        f"{'peer':<14} {'seq p50':>9} {'seq p90':>9} {'seq p99':>9} "
        f"{'runs/s':>8} {'conc p50':>9} {'conc p99':>9} {'cpu/run':>8} {'rounds':>6}"
    )
    lines = [
        f"sequential: {args.sequential} runs, 1 client; concurrent: {args.concurrent_runs} runs,"
        f" {args.clients} clients, a thread per {'run' if args.thread_per_run else 'client'};"
        f" medians over {args.repeat} round(s); latencies in ms; cpu/run: server CPU ms per"
        " concurrent run (the machine's busy CPU minus the clients' own)",
        *(
            ["PROFILED: pgqueue ran under py-spy; its figures are not comparable"]
            if args.profile
            else []
        ),
        head,
        "-" * len(head),
    ]
    for name, s in summaries.items():
        lines.append(
            f"{name:<14} {s['sequential_p50_ms']:>9.1f} {s['sequential_p90_ms']:>9.1f} "
            f"{s['sequential_p99_ms']:>9.1f} {s['concurrent_runs_per_s']:>8.1f} "
            f"{s['concurrent_p50_ms']:>9.1f} {s['concurrent_p99_ms']:>9.1f} "
            f"{s['concurrent_server_cpu_ms_per_run'] or 0:>8.1f} {s['rounds']:>6}"
        )
    for name, reason in not_measured.items():
        lines.append(f"{name:<14} not measured: {headline(reason)}")
    if rel:
        lines.append("")
        lines.append("pgqueue / best other peer (throughput: >1 is better; latency: <1 is better)")
        for field, r in rel.items():
            lines.append(
                f"  {field:<40} {r['ratio']!s:>7}x  (pgqueue {r['pgqueue']}, {r['best_peer']} {r['best_value']})"
            )
    if auth:
        lines.append("")
        lines.append("pgqueue-auth / pgqueue (the cost of an Auth that filters every read)")
        for field, r in auth.items():
            lines.append(f"  {field:<40} {r['ratio']!s:>7}x  (on {r['on']}, off {r['off']})")
    for name, c in (ceilings or {}).items():
        lines.append(
            f"  clients' ceiling ({name}: a server that answers at once):"
            f" {c['ceiling_runs_per_s']} runs/s; {c['factor']:g}x the best peer:"
            f" {c['target_runs_per_s']} runs/s"
        )
    return "\n".join(lines)

"""The dashboard's chart, written here as SVG: nothing to build, vendor or
fetch from elsewhere, and the page only puts it in place.

Two panels over one time axis: the queue's depth (pending and running, as
steps at each bucket's end) above, and the runs that ended in each bucket,
stacked by status, below.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from html import escape
from typing import Any

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT = 56, 890
DEPTH_TOP, DEPTH_BOTTOM = 34, 140
ENDED_TOP, ENDED_BOTTOM = 182, 286
COLORS = {
    "pending": "#2563eb",
    "running": "#9333ea",
    "success": "#16a34a",
    "error": "#dc2626",
    "timeout": "#ea580c",
    "interrupted": "#6b7280",
}
STACKED = ("success", "error", "timeout", "interrupted")
TICKS = 6


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at or above ``value``."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def _label(at: Any, tz_minutes: int, seconds: bool) -> str:
    local = at + timedelta(minutes=tz_minutes)
    return str(local.strftime("%H:%M:%S" if seconds else "%H:%M"))


def _axis(top: int, bottom: int, ceiling: int, title: str) -> list[str]:
    out = [f'<text x="{LEFT}" y="{top - 10}" class="panel">{escape(title)}</text>']
    for frac in (0.0, 0.5, 1.0):
        y = bottom - (bottom - top) * frac
        value = ceiling * frac
        text = f"{value:g}"
        out.append(
            f'<line x1="{LEFT}" x2="{RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{text}</text>'
        )
    return out


def _legend(names: Sequence[str], y: int) -> list[str]:
    out = []
    x = RIGHT
    for name in reversed(names):
        x -= 14 + 7 * len(name)
        out.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{COLORS[name]}"/>'
            f'<text x="{x + 13}" y="{y}" class="tick">{escape(name)}</text>'
        )
        x -= 12
    return out


def _ended(bucket: dict[str, Any]) -> int:
    return sum(int(bucket[s]) for s in STACKED)


def render(series: Sequence[dict[str, Any]], bucket_seconds: int, tz_minutes: int = 0) -> str:
    """The chart of ``series`` (``pgqueue.resources.dashboard``'s buckets,
    oldest first); times shown ``tz_minutes`` east of UTC."""
    n = max(len(series), 1)
    step = (RIGHT - LEFT) / n
    depth_max = nice_ceiling(max([1, *(max(b["pending"], b["running"]) for b in series)]))
    ended_max = nice_ceiling(max([1, *(_ended(b) for b in series)]))
    per = f"{bucket_seconds} s" if bucket_seconds < 60 else f"{bucket_seconds // 60} min"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="queue depth and runs ended over time" class="chart-svg">',
        "<style>.tick{font:11px sans-serif;fill:#4b5563}"
        ".panel{font:bold 12px sans-serif;fill:#111827}</style>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        *_axis(DEPTH_TOP, DEPTH_BOTTOM, depth_max, "Queue depth (runs)"),
        *_legend(("pending", "running"), DEPTH_TOP - 10),
        *_axis(ENDED_TOP, ENDED_BOTTOM, ended_max, f"Runs ended per {per}"),
        *_legend(STACKED, ENDED_TOP - 10),
    ]
    depth_h = DEPTH_BOTTOM - DEPTH_TOP
    for name in ("pending", "running"):
        points = []
        for i, b in enumerate(series):
            y = DEPTH_BOTTOM - depth_h * b[name] / depth_max
            points.append(f"{LEFT + i * step:.1f},{y:.1f} {LEFT + (i + 1) * step:.1f},{y:.1f}")
        if points:
            parts.append(
                f'<polyline class="line-{name}" fill="none" stroke="{COLORS[name]}" '
                f'stroke-width="2" points="{" ".join(points)}"/>'
            )
    ended_h = ENDED_BOTTOM - ENDED_TOP
    for i, b in enumerate(series):
        x = LEFT + i * step + step * 0.1
        y = float(ENDED_BOTTOM)
        counts = ", ".join(f"{b[s]} {s}" for s in STACKED if b[s])
        label = _label(b["bucket_start"], tz_minutes, bucket_seconds < 60)
        group = [f"<g><title>{escape(label)}: {escape(counts or 'none ended')}</title>"]
        for s in STACKED:
            if not b[s]:
                continue
            h = ended_h * b[s] / ended_max
            y -= h
            group.append(
                f'<rect class="bar-{s}" x="{x:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" '
                f'height="{h:.1f}" fill="{COLORS[s]}"/>'
            )
        if len(group) > 1:
            parts.extend([*group, "</g>"])
    for k in range(TICKS + 1):
        i = min(round(k * n / TICKS), n - 1)
        if not series:
            break
        x = LEFT + i * step
        label = _label(series[i]["bucket_start"], tz_minutes, bucket_seconds < 60)
        parts.append(
            f'<text x="{x:.1f}" y="{ENDED_BOTTOM + 18}" text-anchor="middle" '
            f'class="tick">{escape(label)}</text>'
        )
    if not any(b["created"] or b["pending"] or b["running"] or _ended(b) for b in series):
        parts.append(
            f'<text x="{(LEFT + RIGHT) / 2}" y="{DEPTH_BOTTOM - depth_h / 2}" '
            'text-anchor="middle" class="tick">no runs in this window</text>'
        )
    parts.append("</svg>")
    return "".join(parts)

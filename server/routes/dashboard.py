"""The dashboard's data, read-only: ``/dashboard/api/overview`` (the page's
poll, with the chart as SVG) and ``/dashboard/api/runs/{run_id}`` (a run's
timeline). The page itself is ``server.dashboard``.

Both pass the authentication every route does, and ask the Auth's
``threads.search`` handler which runs the user may see (runs are
authorized as their threads; the dashboard searches across them): a user
with a filter sees only their own runs, in the chart's counts too, and
another user's run answers 404.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.resources import dashboard
from pgqueue.resources.visibility import Visible
from server.api import JSON, Router, parse_query, path_uuid
from server.authorization import authorize
from server.context import ctx
from server.dashboard import chart

router = Router("dashboard")

WindowName = Literal["5m", "15m", "1h", "6h", "24h"]


class OverviewQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    window: WindowName = "15m"
    # The browser's offset from UTC, east positive: the chart's time labels.
    tz: int = Field(default=0, ge=-14 * 60, le=14 * 60)


async def _visible(request: Request, **value: Any) -> Visible:
    return await authorize(
        request, "threads", "search", {"metadata": {}, "values": None, "status": None, **value}
    )


@router.route(
    "GET",
    "/dashboard/api/overview",
    summary="Dashboard: queue depth and throughput over a window, workers, stale runs, failures",
    query=OverviewQuery,
)
async def overview(request: Request) -> Response:
    query = parse_query(request, OverviewQuery)
    window = dashboard.WINDOWS[query.window]
    found = await dashboard.overview(ctx(request).pool, window, await _visible(request))
    found["chart_svg"] = chart.render(found["series"], window.bucket_seconds, query.tz)
    return JSON(found)


@router.route(
    "GET",
    "/dashboard/api/runs/{run_id}",
    summary="Dashboard: a run's timeline (attempts, holder, checkpoints, events, end)",
    responses={200: "The run's timeline", 404: "Unknown run"},
)
async def run_timeline(request: Request) -> Response:
    run_id = path_uuid(request, "run_id")
    visible = await _visible(request, run_id=run_id)
    return JSON(await dashboard.timeline(ctx(request).pool, run_id, visible))

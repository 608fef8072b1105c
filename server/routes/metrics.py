"""``/metrics``: Prometheus's text format.

This process's counters and histograms (its HTTP requests, and with
``serve`` its workers' claims, runs, heartbeats and sweeps), its pools, and
the gauges read from the database now, which every process reports alike
(``pgqueue.observe``). Open like ``/ok``: counts only, no resource's data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.observe import exporter
from server.api import Router, parse_query
from server.context import ctx

router = Router("metrics")


class MetricsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # The platform's parameter; its json format is not served here.
    format: Literal["prometheus"] = "prometheus"


@router.route(
    "GET",
    "/metrics",
    summary="Metrics in Prometheus's text format",
    query=MetricsQuery,
    responses={200: "Prometheus text format"},
    returns="text",
)
async def metrics(request: Request) -> Response:
    parse_query(request, MetricsQuery)
    body = await exporter.exposition(ctx(request).pool)
    return Response(body, media_type=exporter.CONTENT_TYPE)

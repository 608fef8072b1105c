"""The dashboard's page: ``/dashboard`` (index.html) and its script and
style sheet under ``/dashboard/static/``, shipped in the package (no build
step, nothing fetched from elsewhere). The data comes from
``server.routes.dashboard``; the chart is SVG the server writes
(``chart``).

These routes are not in the OpenAPI document (they answer HTML, CSS and
JavaScript, not the API), but they pass the same authentication as every
route: with an Auth configured, the page is not served without it.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# The only files served, and their types: a name not listed is 404, so no
# path reaches outside the static directory.
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _read(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


# The page runs its own script and inserts the server's SVG, nothing else:
# whatever a run's error message holds is only ever text.
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:"
    ),
    "X-Content-Type-Options": "nosniff",
}


async def page(_request: Request) -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return PlainTextResponse("Not Found", status_code=404)
    return Response(_read(name), media_type=STATIC[name], headers=HEADERS)


def routes() -> list[Route]:
    return [
        Route("/dashboard", page, methods=["GET"]),
        Route("/dashboard/static/{name}", static, methods=["GET"]),
    ]

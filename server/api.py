"""What every handler uses: a router that records each endpoint's models
(for validation and for ``/openapi.json``), request parsing that answers
4xx naming the field, and JSON responses.

Handlers are plain Starlette endpoints; the router only remembers, per
route, which pydantic models describe its body and query string.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]
M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """An error the client caused (or may retry) that the server finds
    itself (request parsing, validation): status and a message that names
    the field and the problem. The library's refusals are
    ``pgqueue.errors``' and reach the client through ``server.errors``."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def invalid(field_name: str, problem: str) -> ApiError:
    return ApiError(422, f"{field_name}: {problem}", [{"field": field_name, "message": problem}])


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # Status codes this route answers besides 4xx errors, with a description.
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    # A response model (for the spec), "sse" for an event stream, "text".
    returns: type[BaseModel] | str | None = None


class Router:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, str] | None = None,
        returns: type[BaseModel] | str | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=self.tag,
                    body=body,
                    query=query,
                    responses=responses or {200: "OK"},
                    returns=returns,
                )
            )
            return handler

        return register


def starlette_routes(routers: list[Router]) -> list[Route]:
    """One Starlette route per path, dispatching on method (so an unknown
    method on a known path answers 405, not 404)."""
    by_path: dict[str, dict[str, Handler]] = {}
    for router in routers:
        for e in router.endpoints:
            by_path.setdefault(e.path, {})[e.method] = e.handler
    routes = []
    for path, methods in by_path.items():
        routes.append(Route(path, _dispatch(methods), methods=list(methods)))
    return routes


def _dispatch(methods: dict[str, Handler]) -> Handler:
    async def endpoint(request: Request) -> Response:
        return await methods[request.method](request)

    return endpoint


# -- parsing ---------------------------------------------------------------


# Nesting a client's JSON may have: orjson writes at most 255 levels, and
# responses wrap what was stored in a few levels of their own.
MAX_DEPTH = 200
# Escapes that decode to what PostgreSQL cannot store: U+0000 (text and
# jsonb refuse it) and UTF-16 surrogates (not encodable as UTF-8 unless
# paired). The scan of the raw body is cheap; only a match costs a walk.
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        # 1e400 parses as infinity, which jsonb refuses like NaN.
        raise ValueError(f"number {text} is out of range")
    return value


def _malformed(problem: str, where: str = "body") -> ApiError:
    return ApiError(422, f"{where}: {problem}", [{"field": where, "message": problem}])


def _field(path: list[Any], top_list: bool) -> str:
    joined = ".".join(str(p) for p in path)
    return f"body.{joined}" if top_list or not joined else joined


def _too_deep(data: Any) -> list[Any] | None:
    """The path to a container nested deeper than MAX_DEPTH, if any."""
    if not isinstance(data, dict | list):
        return None
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            return path
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(item, dict | list):
                stack.append((item, [*path, key]))
    return None


def _unstorable_text(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate, which is not valid Unicode"
    return None


def _printable(key: str) -> str:
    return key.encode(errors="backslashreplace").decode().replace("\x00", "\\x00")


def _unstorable(data: Any) -> tuple[list[Any], str] | None:
    """The path to a string (or key) PostgreSQL cannot store, and why."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            problem = _unstorable_text(value)
            if problem:
                return path, problem
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _unstorable_text(key)
                if problem:
                    return [*path, _printable(key)], f"key {problem}"
                stack.append((item, [*path, key]))
        elif isinstance(value, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(value))
    return None


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON; {} when empty. 413 past ``max_bytes``;
    422 for what is not JSON or what PostgreSQL could not store, naming
    the field."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        # Strict UTF-8 (a BOM is dropped): json.loads would let encoded
        # surrogates through.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _malformed(f"not valid UTF-8: {exc}") from None
    try:
        # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except ValueError as exc:
        raise _malformed(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise _malformed(f"nested deeper than {MAX_DEPTH} levels") from None
    top_list = isinstance(data, list)
    # Only a body with that many brackets can be nested that deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        path = _too_deep(data)
        if path is not None:
            raise _malformed(f"nested deeper than {MAX_DEPTH} levels", _field(path, top_list))
    if _SUSPECT.search(raw):
        found = _unstorable(data)
        if found is not None:
            raise _malformed(found[1], _field(found[0], top_list))
    return data


def validate(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or where
            if where.startswith("body."):  # an item of a list body
                loc = f"{where}.{loc}"
            errors.append({"field": loc, "message": err["msg"]})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ApiError(422, detail, errors) from None


async def parse_body(request: Request, model: type[M]) -> M:
    limit = request.app.state.ctx.settings.max_body_bytes
    data = await read_json(request, limit)
    if not isinstance(data, dict):
        raise invalid("body", f"expected a JSON object, got {type(data).__name__}")
    return validate(model, data, "body")


def parse_query(request: Request, model: type[M]) -> M:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return validate(model, params, "query")


def path_uuid(request: Request, name: str) -> UUID:
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except ValueError:
        raise invalid(name, f"{raw!r} is not a UUID") from None


# -- responses -------------------------------------------------------------


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return str(obj)


def _plain(obj: Any) -> Any:
    """``obj`` as what the standard library's encoder takes, the way orjson
    would have written it."""
    if isinstance(obj, dict):
        return {_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, datetime | date | time):
        return obj.isoformat()
    return _plain(_default(obj))


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    return str(_plain(key))


def to_json(data: Any) -> bytes:
    try:
        return orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        # orjson refuses integers beyond 64 bits, nesting deeper than 255
        # levels and unpaired surrogates. The first is valid JSON a client
        # may have stored (jsonb keeps any number, and answers an integral
        # 1e300 as a 301-digit integer); the others a graph may return.
        # ASCII output escapes the surrogates.
        return json.dumps(_plain(data), separators=(",", ":")).encode()


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return to_json(content)


def no_content(status: int = 204) -> Response:
    return Response(status_code=status)

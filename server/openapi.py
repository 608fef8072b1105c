"""``/openapi.json``, built from the routers' recorded models.

Every route appears with its path parameters, query model, body model and
the statuses it answers; request and response models are pydantic's own
JSON schemas, gathered under ``components/schemas``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.api import Router

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
ERROR_STATUSES = {
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Validation error: the body names the field and the problem",
}


def build_spec(routers: list[Router], version: str) -> dict[str, Any]:
    models: list[type[BaseModel]] = []
    for router in routers:
        for e in router.endpoints:
            for model in (e.body, e.query, e.returns):
                if isinstance(model, type) and model not in models:
                    models.append(model)
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "required": ["detail"],
    }

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    paths: dict[str, Any] = {}
    for router in routers:
        for e in router.endpoints:
            path = _PARAM.sub(r"{\1}", e.path)
            op: dict[str, Any] = {
                "summary": e.summary,
                "tags": [e.tag],
                "operationId": f"{e.method.lower()}_{e.handler.__name__}",
                "responses": {},
            }
            params = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"}
                    if name.endswith("_id")
                    else {"type": "string"},
                }
                for name in _PARAM.findall(e.path)
            ]
            if e.query is not None:
                schema = e.query.model_json_schema()
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    params.append(
                        {"name": name, "in": "query", "required": name in required, "schema": prop}
                    )
            if params:
                op["parameters"] = params
            if e.body is not None:
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": ref(e.body)}},
                }
            for status, description in e.responses.items():
                response: dict[str, Any] = {"description": description}
                if e.returns in ("sse", "text") and status == 200:
                    kind = "text/event-stream" if e.returns == "sse" else "text/plain"
                    response["content"] = {kind: {"schema": {"type": "string"}}}
                elif isinstance(e.returns, type) and status < 300 and status != 204:
                    response["content"] = {"application/json": {"schema": ref(e.returns)}}
                elif status < 300 and status not in (202, 204):
                    response["content"] = {"application/json": {"schema": {}}}
                op["responses"][str(status)] = response
            for status, description in ERROR_STATUSES.items():
                op["responses"].setdefault(
                    str(status),
                    {
                        "description": description,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                )
            paths.setdefault(path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pgqueue",
            "version": version,
            "description": "LangGraph Platform API on PostgreSQL alone.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }

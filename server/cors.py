"""CORS, so that browser apps (Studio, Agent Chat UI, ``useStream`` apps)
on another origin can call the server.

langgraph.json's ``http.cors`` holds Starlette ``CORSMiddleware`` options,
read as the platform reads them: given, they are passed as they are (an
option left out takes Starlette's default, so ``allow_methods`` is then
``GET`` only); absent, any origin may call, without credentials, and the
headers the JS SDK reads are exposed: a new run's id (``content-location``)
and the paging of searches (``x-pagination-*``).

``pgqueue serve`` also answers Private Network Access preflights
(``Access-Control-Request-Private-Network``), so that a hosted page
(Studio) may call a server on the user's own machine. (``langgraph dev``
means to, but its Starlette refuses such a preflight with 400.) ``pgqueue server`` does not: that opening is for a
developer's laptop, not for a deployment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from pgqueue.errors import ConfigError

EXPOSED_BY_DEFAULT = ["content-location", "x-pagination-total", "x-pagination-next"]

DEFAULT_OPTIONS: dict[str, Any] = {
    "allow_origins": ["*"],
    "allow_methods": ["*"],
    "allow_headers": ["*"],
    "allow_credentials": False,
    "expose_headers": EXPOSED_BY_DEFAULT,
}

# Each option and the JSON type it must have.
_LISTS = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")
_TYPES: dict[str, type] = {
    **dict.fromkeys(_LISTS, list),
    "allow_origin_regex": str,
    "allow_credentials": bool,
    "max_age": int,
}


def cors_options(cors: Any, where: str = "langgraph.json") -> dict[str, Any]:
    """CORSMiddleware's keyword arguments for an ``http.cors`` value (None:
    the key is absent). A wrong one stops the server at start, naming it."""
    if cors is None:
        return dict(DEFAULT_OPTIONS)
    if not isinstance(cors, Mapping):
        raise ConfigError(f"{where}: http.cors must be an object")
    options: dict[str, Any] = {}
    value: Any
    for key, value in cors.items():
        # Any: the isinstance below must not narrow value to a bare object.
        expected: Any = _TYPES.get(key)
        if expected is None:
            raise ConfigError(f"{where}: http.cors.{key} is not an option; known: {sorted(_TYPES)}")
        # bool is an int to Python, and JSON's true must not pass as a max_age.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: http.cors.{key} must be {_json_name(expected)}")
        if expected is list and not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: http.cors.{key} must be a list of strings")
        if key == "allow_origin_regex":
            try:
                re.compile(value)
            except re.error as exc:
                raise ConfigError(f"{where}: http.cors.allow_origin_regex: {exc}") from None
        if key == "max_age" and value < 0:
            raise ConfigError(f"{where}: http.cors.max_age must not be negative")
        options[key] = value
    return options


def _json_name(kind: type) -> str:
    return {list: "a list", str: "a string", bool: "true or false", int: "an integer"}[kind]


def middleware(cors: Any, *, private_network: bool, where: str = "langgraph.json") -> Middleware:
    """The CORS layer, to go outside authentication: a preflight carries no
    credentials, and a 401 must be readable too. With ``private_network``
    it also allows Private Network Access to origins it allows."""
    options = cors_options(cors, where)
    return Middleware(CORSMiddleware, **options, allow_private_network=private_network)

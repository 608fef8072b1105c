"""What pgqueue does with each key of a ``langgraph.json``: nothing in it is
ignored in silence.

A key is served (pgqueue does what the platform does), refused (starting
anyway would quietly change what the user relies on: where data goes,
whether it is encrypted, which routes exist), or accepted with a warning
that says what will not happen. A key the platform does not define either
is warned about too: a typo must not pass for a setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pgqueue.errors import ConfigError

log = logging.getLogger(__name__)

SERVED = "served"

# Served keys, by dotted path; a section listed here has its keys walked.
_SERVED = {
    "dependencies",
    "graphs",
    "env",
    "auth",
    "auth.path",
    "store",
    "store.ttl",
    "store.ttl.default_ttl",
    "store.ttl.refresh_on_read",
    "store.ttl.sweep_interval_minutes",
    "http",
    "http.cors",
    "http.app",
    "http.mount_prefix",
    "http.middleware_order",
    "http.configurable_headers",
    "http.enable_custom_route_auth",
    "http.disable_assistants",
    "http.disable_threads",
    "http.disable_runs",
    "http.disable_store",
    "http.disable_meta",
    # pgqueue serves neither MCP nor UI routes: disabled either way.
    "http.disable_mcp",
    "http.disable_ui",
    "webhooks",
    "checkpointer",
    "checkpointer.ttl",
    "checkpointer.ttl.strategy",
    "checkpointer.ttl.default_ttl",
    "checkpointer.ttl.sweep_interval_minutes",
    "checkpointer.ttl.sweep_limit",
    # pgqueue's own settings (execution/graphs.py: _run_retention_days).
    "pgqueue",
    "pgqueue.run_retention_days",
}

# Sections whose own keys another module checks in full (webhooks:
# execution/webhook_policy.py; http.cors: server/cors.py).
_CHECKED_ELSEWHERE = {"webhooks", "http.cors", "http.configurable_headers", "graphs", "env"}

# Served switches: true or false, nothing else.
_BOOLEANS = {p for p in _SERVED if p.startswith(("http.disable_", "http.enable_"))}

# Refused: the reason, naming what would silently go wrong.
_REFUSED = {
    "encryption": "custom encryption is not supported: data would be stored unencrypted",
    "store.index": "semantic search (store.index) is not supported yet: searches would "
    "ignore the query",
    "checkpointer.path": "a custom checkpointer is not supported: pgqueue's fenced "
    "PostgreSQL checkpointer would be used instead",
}

# Refused only when switched on (false is what pgqueue does anyway).
_REFUSED_WHEN_TRUE = {"http.disable_webhooks"}

# Accepted with a warning: what will not happen.
_WARNED = {
    "checkpointer.serde": "checkpointer.serde is not applied: pgqueue's serializer is used",
    "auth.disable_studio_auth": "auth.disable_studio_auth is not applied",
    "auth.openapi": "auth.openapi is not applied: /openapi.json has no security schemes",
    "auth.cache": "auth.cache is not applied: every request is authenticated",
    "http.logging_headers": "http.logging_headers is not applied",
    "priority": "priority is not applied: runs are claimed by their own priority and age",
    "ui": "ui components are not served",
}

# Settings of `langgraph build` (the Docker image), which pgqueue does not
# build: it runs in the Python environment it was installed in.
_BUILD = {
    "python_version",
    "node_version",
    "api_version",
    "base_image",
    "image_distro",
    "pip_config_file",
    "pip_installer",
    "source",
    "dockerfile_lines",
    "keep_pkg_tools",
}


def review(raw: Mapping[str, Any], where: str) -> list[str]:
    """Refuse (ConfigError) or warn about every key pgqueue does not serve;
    returns the warnings, which are also logged."""
    warnings: list[str] = []
    build = sorted(k for k in raw if k in _BUILD)
    if build:
        warnings.append(
            f"{', '.join(build)}: settings of `langgraph build`; pgqueue runs in "
            "its own Python environment and applies none of them"
        )
    warnings.extend(_walk(raw, "", where))
    packages = [d for d in raw.get("dependencies") or [] if not str(d).startswith((".", "/"))]
    if packages:
        warnings.append(
            f"dependencies {packages}: pgqueue does not install packages; install "
            "them in its environment (local paths are put on sys.path)"
        )
    for warning in warnings:
        log.warning("%s: %s", where, warning, extra={"event": "config_key_not_applied"})
    return warnings


def _walk(section: Mapping[str, Any], prefix: str, where: str) -> list[str]:
    warnings: list[str] = []
    for key, value in section.items():
        path = f"{prefix}{key}"
        if not prefix and key in _BUILD:
            continue
        if path in _REFUSED:
            raise ConfigError(f"{where}: {path}: {_REFUSED[path]}")
        if path in _BOOLEANS and not isinstance(value, bool):
            raise ConfigError(f"{where}: {path}: must be true or false")
        if path in _REFUSED_WHEN_TRUE:
            if value is True:
                raise ConfigError(f"{where}: {path}: not supported (it is always false)")
            continue
        if path in _WARNED:
            warnings.append(_WARNED[path])
        elif path not in _SERVED:
            warnings.append(f"{path} is not a key pgqueue knows: ignored")
        elif path not in _CHECKED_ELSEWHERE and isinstance(value, Mapping):
            warnings.extend(_walk(value, path + ".", where))
    return warnings

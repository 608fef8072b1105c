"""The Auth of the pgqueue-auth peer: what authorization costs per run.

Every request is authenticated (one user, since the bench's clients send
no credentials) and authorized the way a multi-user deployment would: the
creator's id stamped on threads and runs, and every read filtered by it in
SQL. Compare pgqueue-auth with pgqueue: the difference is the cost.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    return authorization or "bench-user"


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Any:
    if ctx.action in ("create", "create_run") and isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}

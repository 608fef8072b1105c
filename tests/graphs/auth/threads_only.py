"""An Auth that authorizes threads only: each user sees the threads they
created. Everything else (assistants, crons, the store) no handler covers,
which the server warns about when it starts."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "Bearer" or not token.startswith("token-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="no valid token")
    return token.removeprefix("token-")


@auth.on.threads
async def own_threads(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    if ctx.action in ("create", "create_run") and isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}

"""Two users who must not see each other's data: an Auth that sets an owner
on everything a user creates and filters every read by it.

``Authorization: Bearer token-<user>`` names the user. Two users are
special, to test refusals: ``denied``'s requests are refused by the
handler (it returns False) and ``broken``'s make the handler raise.
"""

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


def _refusals(ctx: Auth.types.AuthContext) -> bool | None:
    if ctx.user.identity == "denied":
        return False
    if ctx.user.identity == "broken":
        raise RuntimeError("the handler failed")
    return None


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Any:
    """Threads (and their runs), assistants and crons: stamped with their
    creator on create, visible to their owner only."""
    if _refusals(ctx) is False:
        return False
    if ctx.action in ("create", "create_run", "update") and isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Any) -> Any:
    """One's own assistants, and the ones the server made for its graphs."""
    if _refusals(ctx) is False:
        return False
    return {"$or": [{"owner": ctx.user.identity}, {"created_by": "system"}]}


@auth.on.assistants.search
async def search_assistants(ctx: Auth.types.AuthContext, value: Any) -> Any:
    return await read_assistants(ctx=ctx, value=value)


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> Any:
    """Each user's store items live under a namespace that starts with it."""
    if _refusals(ctx) is False:
        return False
    value["namespace"] = (ctx.user.identity, *(value.get("namespace") or ()))
    return None

"""Handlers that answer what pgqueue must not serve as asked, and filters
built with ``$or`` and ``$contains``.

Threads are shared: a user sees the threads they created (stamped
``owner``) and those whose ``members`` list names them. Some users get
other answers from the threads handler: ``invalid`` an operator pgqueue
does not know, ``nested`` operators nested three deep, ``weird`` a string,
``teapot`` an ``Auth.exceptions.HTTPException`` (418). The store handler
answers a metadata filter, which the store cannot apply (its items have
no metadata): every store request is refused (403). Assistants and crons
have no handler.
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

ODD_ANSWERS: dict[str, Any] = {
    "invalid": {"owner": {"$ne": "invalid"}},
    "nested": {"$or": [{"$and": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"d": 4}]},
    "weird": "yes",
}


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "Bearer" or not token.startswith("token-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="no valid token")
    return token.removeprefix("token-")


@auth.on.threads
async def shared_threads(ctx: Auth.types.AuthContext, value: Any) -> Any:
    user = ctx.user.identity
    if user in ODD_ANSWERS:
        return ODD_ANSWERS[user]
    if user == "teapot":
        raise Auth.exceptions.HTTPException(status_code=418, detail="no threads for teapots")
    if ctx.action in ("create", "create_run") and isinstance(value, dict):
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata["owner"] = user
    return {"$or": [{"owner": user}, {"members": {"$contains": user}}]}


@auth.on.store
async def owner_filter(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    return {"owner": ctx.user.identity}

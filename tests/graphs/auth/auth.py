"""The test server's authentication: ``Authorization: Bearer token-<user>``
(``token-admin`` also gets a permission); anything else is refused."""

from __future__ import annotations

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None, path: str) -> Auth.types.MinimalUserDict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme != "Bearer" or not token.startswith("token-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail=f"no valid token for {path}")
    user = token.removeprefix("token-")
    return {"identity": user, "permissions": ["admin"] if user == "admin" else []}

"""API keys: `Authorization: Bearer <key>`; each key has one role, a sales key its rep."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from starter.settings import ApiKeyHolder, Role

_bearer = HTTPBearer(auto_error=False, description="An API key from NURTURE_API_KEYS")


def holder_of(keys: dict[str, ApiKeyHolder], presented: str) -> ApiKeyHolder | None:
    """Who holds the presented key, or None."""
    # Compare against every key in constant time, so timing doesn't reveal a prefix.
    found = None
    for key, holder in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = holder
    return found


def require_role(*allowed: Role) -> Callable[..., Coroutine[Any, Any, ApiKeyHolder]]:
    """A dependency that admits keys of the `allowed` roles (admin is always admitted).

    401 means "who are you?" (no key, or a key we don't know); 403 means "we know you,
    and your role may not do this".
    """
    permitted = {*allowed, Role.ADMIN}

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> ApiKeyHolder:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        holder = holder_of(request.app.state.api_keys, credentials.credentials)
        if holder is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if holder.role not in permitted:
            names = ", ".join(sorted(r.value for r in permitted))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"a {holder.role.value} key may not do this (needs: {names})",
            )
        return holder

    return dependency

"""API keys: `Authorization: Bearer <key>`, each key with one role."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from starter.settings import Role

_bearer = HTTPBearer(auto_error=False, description="An API key from NURTURE_API_KEYS")


def _role_of(keys: dict[str, Role], presented: str) -> Role | None:
    # Compare against every key in constant time, so timing doesn't reveal a prefix.
    found = None
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = role
    return found


def require_role(*allowed: Role) -> Callable[..., Coroutine[Any, Any, Role]]:
    """A dependency that admits keys of the `allowed` roles (admin is always admitted)."""
    permitted = {*allowed, Role.ADMIN}

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Role:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        role = _role_of(request.app.state.api_keys, credentials.credentials)
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role not in permitted:
            names = ", ".join(sorted(r.value for r in permitted))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"a {role.value} key may not do this (needs: {names})"
            )
        return role

    return dependency

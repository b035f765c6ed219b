"""The role dependencies every router uses (one place, so the authorisation table in
tests/test_authorisation.py and the code agree)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from starter.api.auth import require_role
from starter.settings import ApiKeyHolder, Role

MarketingKey = Annotated[ApiKeyHolder, Depends(require_role(Role.MARKETING))]
SalesKey = Annotated[ApiKeyHolder, Depends(require_role(Role.SALES))]
AdminKey = Annotated[ApiKeyHolder, Depends(require_role(Role.ADMIN))]
MarketingOrSalesKey = Annotated[ApiKeyHolder, Depends(require_role(Role.MARKETING, Role.SALES))]


def caller_name(holder: ApiKeyHolder) -> str:
    """How a key's holder is recorded (`sales:alex`, `marketing`)."""
    return f"{holder.role.value}:{holder.rep}" if holder.rep else holder.role.value

"""`GET /v1/inbound` (admin): what came back from the mail world and what was done."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from starter.api.deps import AdminKey, Sessions
from starter.services.inbound import InboundView, list_inbound

router = APIRouter(tags=["deliverability"])


@router.get("/v1/inbound", response_model=list[InboundView])
async def get_inbound(
    _: AdminKey,
    sessions: Sessions,
    status: Annotated[Literal["received", "processed", "quarantined"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[InboundView]:
    """The latest bounces, complaints and replies the inbound listener stored (newest
    first), with their classification and the action taken; `status=quarantined` lists
    what couldn't be parsed (kept, never dropped). Message bytes are never shown."""
    return await list_inbound(sessions, status=status, limit=limit)

"""Reading what came back (`GET /v1/inbound`): processed and quarantined inbound messages,
newest first, with what was done — never their bytes (they quote people's mail)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import InboundMessage, as_utc


class InboundView(BaseModel):
    """One inbound message as the API shows it."""

    id: int
    received_at: datetime
    status: str
    kind: str | None
    outbox_id: int | None
    lead_id: str | None
    details: dict[str, Any]


async def list_inbound(
    sessions: async_sessionmaker, *, status: str | None, limit: int
) -> list[InboundView]:
    """The latest inbound messages (optionally of one status: received, processed,
    quarantined)."""
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(InboundMessage.status == status)
    async with sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    return [
        InboundView(
            id=row.id,
            received_at=as_utc(row.received_at) or row.received_at,
            status=row.status,
            kind=row.kind,
            outbox_id=row.outbox_id,
            lead_id=row.lead_id,
            details=row.details or {},
        )
        for row in rows
    ]

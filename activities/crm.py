"""The CRM handover activity: the built-in CRM table (issue 4 adds webhooks and routing)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity

from activities.contracts import HAND_OVER, HandOverRequest, HandOverResult
from db.models import CrmHandover
from db.writes import insert_once


class CrmActivities:
    """Hands leads to sales, once per lead and MQL cycle."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    @activity.defn(name=HAND_OVER)
    async def hand_over(self, request: HandOverRequest) -> HandOverResult:
        """Create the handover unless this key already created it."""
        async with self._sessions() as session:
            created = await insert_once(
                session,
                CrmHandover(
                    idempotency_key=request.idempotency_key,
                    lead_id=request.lead_id,
                    reason=request.reason,
                ),
            )
            row = (
                await session.execute(
                    select(CrmHandover).where(
                        CrmHandover.idempotency_key == request.idempotency_key
                    )
                )
            ).scalar_one()
            return HandOverResult(handover_id=row.id, created=created)

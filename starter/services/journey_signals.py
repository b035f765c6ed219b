"""Signalling every journey of a lead (events, stage changes, consent)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.models import Enrollment


async def journeys_of(session: AsyncSession, lead_id: str) -> list[str]:
    """The workflow ids of every journey the lead was enrolled in."""
    query = select(Enrollment.workflow_id).where(Enrollment.lead_id == lead_id)
    return list((await session.execute(query)).scalars().all())


async def signal_journeys(
    client: Client, workflow_ids: Iterable[str], signal: str, argument: object
) -> list[str]:
    """Send `signal` to each workflow; those that have ended are skipped. Returns the ids
    the signal reached."""
    delivered = []
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).signal(signal, argument)
            delivered.append(workflow_id)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: that journey has ended
                raise
    return delivered

"""What came back, however it came (the SMTP listener, an email provider's webhook):
stored before it is acknowledged, then handed to its own `InboundMessageWorkflow`; and
read back (`GET /v1/inbound`) — processed and quarantined messages, newest first, with
what was done, never their bytes (they quote people's mail)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import InboundMessage, as_utc, utcnow
from db.writes import insert_ignoring_conflict
from journeys.esp_feedback import InboundSource
from workflows.inbound_message import INBOUND_MESSAGE_WORKFLOW, inbound_workflow_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One inbound message as received, before it is stored."""

    message_key: str  # unique: a redelivery (or a provider's retry) is the row already there
    raw: bytes
    source: InboundSource = InboundSource.SMTP
    envelope_from: str = ""
    recipients: Sequence[str] = field(default_factory=tuple)


async def store_inbound(sessions: async_sessionmaker, messages: Sequence[Received]) -> list[int]:
    """Store `messages` in one transaction, each once; their row ids, in order (a message
    already stored is its existing row). Committed when this returns: then it may be
    acknowledged."""
    async with sessions() as session:
        for message in messages:
            await insert_ignoring_conflict(
                session,
                InboundMessage,
                {
                    "message_key": message.message_key,
                    "raw": message.raw,
                    "source": message.source.value,
                    "envelope_from": message.envelope_from[:320],
                    "recipients": [str(r)[:320] for r in message.recipients][:50],
                    "received_at": utcnow(),
                    "status": "received",
                    "details": {},
                },
            )
        keys = [m.message_key for m in messages]
        rows = await session.execute(
            select(InboundMessage.message_key, InboundMessage.id).where(
                InboundMessage.message_key.in_(keys)
            )
        )
        ids = {key: inbound_id for key, inbound_id in rows}
        await session.commit()
    return [int(ids[key]) for key in keys]


async def start_processing(client: Client, task_queue: str, inbound_id: int) -> None:
    """Hand a stored message to its workflow (once: the workflow id is the row's)."""
    try:
        await client.start_workflow(
            INBOUND_MESSAGE_WORKFLOW,
            inbound_id,
            id=inbound_workflow_id(inbound_id),
            task_queue=task_queue,
        )
    except WorkflowAlreadyStartedError:
        pass


async def hand_over(
    sessions: async_sessionmaker, client: Client, task_queue: str, inbound_ids: Sequence[int]
) -> bool:
    """Start the workflows of messages just stored; one Temporal can't take now stays
    stored, waiting for `hand_over_waiting`. Whether all were started."""
    for inbound_id in inbound_ids:
        try:
            await start_processing(client, task_queue, inbound_id)
        except Exception:  # stored: picked up later
            log.exception("inbound %s stored, not yet processing", inbound_id)
            return False
    return True


async def hand_over_waiting(
    sessions: async_sessionmaker,
    client: Client,
    task_queue: str,
    *,
    source: InboundSource | None = None,
    older_than: timedelta | None = None,
    limit: int | None = None,
) -> int:
    """Start the workflows of messages stored but never handed over (a crash between
    storing and starting, Temporal away); how many."""
    query = select(InboundMessage.id).where(InboundMessage.status == "received")
    if source is not None:
        query = query.where(InboundMessage.source == source.value)
    if older_than is not None:
        query = query.where(InboundMessage.received_at < utcnow() - older_than)
    async with sessions() as session:
        waiting = list(
            (await session.execute(query.order_by(InboundMessage.id).limit(limit))).scalars()
        )
    for inbound_id in waiting:
        await start_processing(client, task_queue, inbound_id)
    return len(waiting)


class InboundView(BaseModel):
    """One inbound message as the API shows it."""

    id: int
    received_at: datetime
    source: str  # smtp (the listener), or the email provider whose webhook it came through
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
            source=row.source,
            status=row.status,
            kind=row.kind,
            outbox_id=row.outbox_id,
            lead_id=row.lead_id,
            details=row.details or {},
        )
        for row in rows
    ]

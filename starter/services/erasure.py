"""Erasure on request (GDPR art. 17): the lead's personal data leaves the database, its
workflows end, and the CRM is told.

Personal data lives in the `leads` row (and in free-form columns next to it: event
properties, email subjects, tracked links' targets, consent evidence, the lead's topic
choices); rows analytics needs stay, anonymised and keyed by the lead's id. Workflow
inputs, signals and histories carry ids, never the lead's address or name, and sales
feedback's text only by note id; an opted-out address stays on the suppression list as a
keyed hash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

import httpx
from pydantic import BaseModel
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.models import (
    BroadcastRecipient,
    ConsentRecord,
    CrmHandover,
    EmailLink,
    EngagementEvent,
    Enrollment,
    FeedbackNote,
    InboundMessage,
    Lead,
    OutboxEmail,
    SalesFeedbackRecord,
    SegmentMembership,
    StageTransition,
    TopicSubscription,
    TriggerFiring,
    utcnow,
)
from db.suppression_list import SuppressionList
from db.writes import is_transient_conflict
from journeys.broadcasts import RecipientStatus
from journeys.consent import ConsentAction, ConsentStatus, suppression_of_status
from journeys.handover import HandoverStatus
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from starter.services.errors import LeadNotFound, Problem, Refusal
from starter.settings import Settings
from workflows.contracts import lead_workflow_id

log = logging.getLogger(__name__)

# Tries of the erasure's transaction when PostgreSQL breaks a deadlock with it.
ERASE_ATTEMPTS = 3

PERSONAL_FIELDS = (
    "email", "first_name", "last_name", "company", "title", "company_size", "industry",
    "country", "timezone",
)  # fmt: skip


class ErasureResult(BaseModel):
    """What an erasure did."""

    lead_id: str
    erased_at: str
    workflows_ended: int
    crm: str


class CrmUnreachable(Problem):
    def __init__(self) -> None:
        super().__init__(
            Refusal.UPSTREAM_FAILED,
            (),
            "the lead's data is erased and its workflows ended, but the CRM could not be told; "
            "repeat the request to retry",
            "crm_unreachable",
        )


async def erase_lead(
    client: Client, sessions: async_sessionmaker, settings: Settings, lead_id: str
) -> ErasureResult:
    """Erase the lead; repeating the request is harmless (and retries the CRM notice)."""
    for attempt in range(1, ERASE_ATTEMPTS + 1):
        try:
            erased_at, workflow_ids = await _erase_rows(sessions, settings, lead_id)
            break
        except DBAPIError as exc:
            # The erasure touches every table of the lead while its workflows may be
            # writing some of them (an email's outbox row, a rescore's lock on the lead):
            # PostgreSQL may pick this transaction to break a deadlock. All of it was
            # rolled back; doing it again is the remedy.
            if not is_transient_conflict(exc) or attempt == ERASE_ATTEMPTS:
                raise
            log.info("erasure of %s met a deadlock; attempt %d", lead_id, attempt + 1)
            await asyncio.sleep(0.05 * attempt)
    await _checkpoint_if_sqlite(sessions)
    ended = await _end_workflows(client, workflow_ids)
    crm = "builtin"
    if settings.crm_adapter == "webhook":
        await _tell_crm(settings, lead_id)
        crm = "notified"
    log.info("erased lead %s; %d workflows ended", lead_id, ended)
    return ErasureResult(
        lead_id=lead_id, erased_at=erased_at.isoformat(), workflows_ended=ended, crm=crm
    )


async def _erase_rows(
    sessions: async_sessionmaker, settings: Settings, lead_id: str
) -> tuple[datetime, list[str]]:
    """The erasure's database part, in one transaction: when the lead was erased, and the
    ids of its workflows to end."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None:
            raise LeadNotFound(lead_id, loc=("path", "lead_id"))
        erased_at = await _clear_personal_fields(session, settings, lead)
        await _anonymise_activity(session, lead_id)
        await _drop_feedback_text(session, lead_id)
        if settings.crm_adapter == "builtin":
            await session.execute(
                update(CrmHandover)
                .where(CrmHandover.lead_id == lead_id)
                .values(status=HandoverStatus.ERASED)
            )
        workflow_ids = await _workflows_of(session, lead_id)
        await session.commit()
    return erased_at, workflow_ids


async def _clear_personal_fields(session: AsyncSession, settings: Settings, lead: Lead) -> datetime:
    """Empty the lead row's personal fields and mark it erased; returns when it was erased
    (the first time, on a repeat)."""
    # The suppression list keeps an opted-out address, as a keyed hash, past erasure: a
    # later import of the same address must not mail the person again.
    held = suppression_of_status(lead.consent_status)
    if held is not None and lead.email is not None:
        await SuppressionList(settings.require_secret_key()).add(session, lead.email, held)
    for name in PERSONAL_FIELDS:
        setattr(lead, name, None)
    lead.properties = {}
    lead.consent_status = ConsentStatus.ERASED.value
    lead.erased_at = lead.erased_at or utcnow()
    return lead.erased_at


async def _anonymise_activity(session: AsyncSession, lead_id: str) -> None:
    """Keep the lead's events, emails and consent records for analytics, minus the free
    text that may be personal; record the erasure itself as a consent record."""
    await session.execute(
        update(EngagementEvent).where(EngagementEvent.lead_id == lead_id).values(properties={})
    )
    await session.execute(
        update(OutboxEmail).where(OutboxEmail.lead_id == lead_id).values(subject=None)
    )
    # A link's target may hold what the template put in it (`?name={{ lead.first_name }}`,
    # the lead's preference token): blank, its click counts stay and a click gets the 404.
    emails = select(OutboxEmail.id).where(OutboxEmail.lead_id == lead_id)
    await session.execute(update(EmailLink).where(EmailLink.outbox_id.in_(emails)).values(url=""))
    # Broadcast recipients keep their status (and skip reasons, a closed set); a failed,
    # deferred or bounced one's reason is the server's reply, which may quote the address.
    await session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.lead_id == lead_id,
            BroadcastRecipient.status != RecipientStatus.SKIPPED.value,
        )
        .values(reason=None)
    )
    # The lead's topic choices are its own: nothing is sent to an erased lead anyway.
    await session.execute(delete(TopicSubscription).where(TopicSubscription.lead_id == lead_id))
    # Out of every segment, and nothing left to start for it.
    await session.execute(delete(SegmentMembership).where(SegmentMembership.lead_id == lead_id))
    await session.execute(
        delete(TriggerFiring).where(
            TriggerFiring.lead_id == lead_id, TriggerFiring.outcome.is_(None)
        )
    )
    # Bounces and replies quote the address and the person's words: only the fact stays.
    await session.execute(
        update(InboundMessage)
        .where(InboundMessage.lead_id == lead_id)
        .values(raw=b"", recipients=[], envelope_from="", details={"erased": True})
    )
    await session.execute(
        update(ConsentRecord)
        .where(ConsentRecord.lead_id == lead_id)
        .values(ip=None, user_agent=None)
    )
    # A bounce's source is the receiving server's text, which may quote the address.
    await session.execute(
        update(ConsentRecord)
        .where(
            ConsentRecord.lead_id == lead_id,
            ConsentRecord.action == ConsentAction.BOUNCED.value,
        )
        .values(source=None)
    )
    session.add(
        ConsentRecord(lead_id=lead_id, action=ConsentAction.ERASED.value, source="erasure request")
    )


async def _drop_feedback_text(session: AsyncSession, lead_id: str) -> None:
    """Sales feedback's free text (a rejection reason may name people, numbers,
    addresses): the notes, the reasons recorded from them, and the causes of stage
    changes that older versions wrote the reason into."""
    await session.execute(
        update(FeedbackNote).where(FeedbackNote.lead_id == lead_id).values(text=None)
    )
    await session.execute(
        update(SalesFeedbackRecord)
        .where(SalesFeedbackRecord.lead_id == lead_id)
        .values(reason=None)
    )
    for transition in (
        await session.execute(
            select(StageTransition).where(
                StageTransition.lead_id == lead_id, StageTransition.cause.like("sales %: %")
            )
        )
    ).scalars():
        transition.cause = transition.cause.partition(":")[0]


async def _workflows_of(session: AsyncSession, lead_id: str) -> list[str]:
    """The ids of the lead's journey workflows and of its lifecycle workflow."""
    journeys = select(Enrollment.workflow_id).where(Enrollment.lead_id == lead_id)
    return [*(await session.execute(journeys)).scalars(), lead_workflow_id(lead_id)]


async def _end_workflows(client: Client, workflow_ids: list[str]) -> int:
    """Terminate the workflows; returns how many were still there to end."""
    ended = 0
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("lead erased")
            ended += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # already ended
                raise
    return ended


async def _checkpoint_if_sqlite(sessions: async_sessionmaker) -> None:
    """SQLite keeps changed pages in its write-ahead log until a checkpoint: the erased
    values would linger in the -wal file. Copy it into the database and truncate it now."""
    async with sessions() as session:
        if session.get_bind().dialect.name == "sqlite":
            await session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


async def _tell_crm(settings: Settings, lead_id: str) -> None:
    assert settings.crm_webhook_url is not None
    body = json.dumps({"event": "lead.erased", "lead_id": lead_id}).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"erase:{lead_id}",
        SIGNATURE_HEADER: sign(body, settings.require_crm_webhook_secret()),
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(3):
            try:
                response = await http.post(settings.crm_webhook_url, content=body, headers=headers)
                if response.status_code < 300:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5 * 2**attempt)
    raise CrmUnreachable()

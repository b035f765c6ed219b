"""Erasure on request (GDPR art. 17): the lead's personal data leaves the database, its
workflows end, and the CRM is told.

Personal data lives in the `leads` row (and in free-form columns next to it: event
properties, email subjects, consent evidence); rows analytics needs stay, anonymised and
keyed by the lead's id. Workflow inputs, signals and histories carry ids, never the
lead's address or name, and sales feedback's text only by note id; an opted-out address
stays on the suppression list as a keyed hash.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
from pydantic import BaseModel
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.models import (
    ConsentRecord,
    CrmHandover,
    EngagementEvent,
    Enrollment,
    FeedbackNote,
    Lead,
    OutboxEmail,
    SalesFeedbackRecord,
    StageTransition,
    utcnow,
)
from db.suppression_list import SuppressionList
from journeys.consent import ConsentAction, ConsentStatus, suppression_of_status
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from starter.services.errors import ApiProblem, LeadNotFound
from starter.settings import Settings
from workflows.contracts import lead_workflow_id

log = logging.getLogger(__name__)

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


class CrmUnreachable(ApiProblem):
    def __init__(self) -> None:
        super().__init__(
            502,
            (),
            "the lead's data is erased and its workflows ended, but the CRM could not be told; "
            "repeat the request to retry",
            "crm_unreachable",
        )


async def erase_lead(
    client: Client, sessions: async_sessionmaker, settings: Settings, lead_id: str
) -> ErasureResult:
    """Erase the lead; repeating the request is harmless (and retries the CRM notice)."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None:
            raise LeadNotFound(lead_id, loc=("path", "lead_id"))
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
        erased_at = lead.erased_at
        await session.execute(
            update(EngagementEvent).where(EngagementEvent.lead_id == lead_id).values(properties={})
        )
        await session.execute(
            update(OutboxEmail).where(OutboxEmail.lead_id == lead_id).values(subject=None)
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
            ConsentRecord(
                lead_id=lead_id, action=ConsentAction.ERASED.value, source="erasure request"
            )
        )
        # Sales feedback's free text (a rejection reason may name people, numbers,
        # addresses): the notes, the reasons recorded from them, and the causes of stage
        # changes that older versions wrote the reason into.
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
        if settings.crm_adapter == "builtin":
            await session.execute(
                update(CrmHandover).where(CrmHandover.lead_id == lead_id).values(status="erased")
            )
        workflow_ids = [
            *(
                await session.execute(
                    select(Enrollment.workflow_id).where(Enrollment.lead_id == lead_id)
                )
            ).scalars(),
            lead_workflow_id(lead_id),
        ]
        await session.commit()
    await _checkpoint_if_sqlite(sessions)
    ended = 0
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).terminate("lead erased")
            ended += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # already ended
                raise
    crm = "builtin"
    if settings.crm_adapter == "webhook":
        await _tell_crm(settings, lead_id)
        crm = "notified"
    log.info("erased lead %s; %d workflows ended", lead_id, ended)
    return ErasureResult(
        lead_id=lead_id, erased_at=erased_at.isoformat(), workflows_ended=ended, crm=crm
    )


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

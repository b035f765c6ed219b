"""What came back for a lead (issue 16), as the lead view shows it: its deliverability
status with the evidence, when its journey emails are held until, and its inbound
messages as timeline entries. The rules are pure (`journeys/bounce_policy.py`); this reads
the rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import InboundMessage, Lead, as_utc
from journeys.bounce_policy import (
    DeliverabilityStatus,
    SoftBouncePolicy,
    TransientBounce,
    deliverability_status,
    failed_messages,
)
from journeys.inbound_mail import InboundKind

# The kinds whose reports are evidence of (un)deliverability.
_EVIDENCE_KINDS = (InboundKind.BOUNCE.value, InboundKind.COMPLAINT.value)


class DeliverabilityEvidence(BaseModel):
    """The last report behind the status: what it was, its DSN status code and diagnostic
    (bounces), what was done and when it arrived."""

    kind: str
    status_code: str | None = Field(default=None, description="e.g. 5.1.1 or 4.2.2")
    diagnostic: str | None = None
    action: str
    at: datetime
    inbound_id: int


class Deliverability(BaseModel):
    """Whether mail reaches the lead: `active`, `soft_bouncing` (transient bounces within
    the window), `bounced` or `complained`, with the evidence."""

    status: DeliverabilityStatus
    transient_bounces: int = Field(
        description="Messages that bounced transiently within the soft-bounce window"
    )
    mail_held_until: datetime | None = Field(
        default=None, description="An out-of-office reply holds journey emails until then"
    )
    evidence: DeliverabilityEvidence | None = None


async def deliverability_of(
    session: AsyncSession, lead: Lead, policy: SoftBouncePolicy, now: datetime
) -> Deliverability:
    """The lead's deliverability now, from its stored bounce and complaint reports."""
    rows = (
        await session.execute(
            select(InboundMessage)
            .where(InboundMessage.lead_id == lead.id, InboundMessage.kind.in_(_EVIDENCE_KINDS))
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        )
    ).scalars()
    reports = list(rows)
    transient = [
        TransientBounce(
            r.outbox_id, as_utc(r.received_at) or now, dsn_of(r.details).get("action", "")
        )
        for r in reports
        if r.kind == InboundKind.BOUNCE.value and was_transient(r.details)
    ]
    failures = failed_messages(transient, now, policy)
    status = deliverability_status(lead.consent_status, failures)
    held = as_utc(lead.mail_held_until)
    return Deliverability(
        status=status,
        transient_bounces=failures,
        mail_held_until=held if held is not None and held > now else None,
        evidence=_evidence(reports[0]) if reports and status != "active" else None,
    )


def _evidence(row: InboundMessage) -> DeliverabilityEvidence:
    dsn = dsn_of(row.details)
    return DeliverabilityEvidence(
        kind=row.kind or "",
        status_code=dsn.get("status") or None,
        diagnostic=dsn.get("diagnostic") or None,
        action=str(row.details.get("action", "")),
        at=as_utc(row.received_at) or row.received_at,
        inbound_id=row.id,
    )


def dsn_of(details: dict[str, Any]) -> dict[str, str]:
    """The first recipient block (status, action, diagnostic) of a stored inbound row's
    DSN (empty: none)."""
    statuses = details.get("statuses") or []
    first = statuses[0] if statuses and isinstance(statuses[0], dict) else {}
    return {k: str(v) for k, v in first.items()}


def was_transient(details: dict[str, Any]) -> bool:
    """Whether a stored bounce row was a transient one (rows stored before the `bounce`
    detail existed say so in their action)."""
    if "bounce" in details:
        return bool(details["bounce"] == "transient")
    return str(details.get("action", "")).startswith("transient")


async def inbound_of(session: AsyncSession, lead_id: str) -> Sequence[InboundMessage]:
    """The lead's processed inbound messages, oldest first (for its timeline)."""
    rows = await session.execute(
        select(InboundMessage)
        .where(InboundMessage.lead_id == lead_id)
        .order_by(InboundMessage.received_at, InboundMessage.id)
    )
    return rows.scalars().all()


def inbound_summary(row: InboundMessage) -> str:
    """One line for the timeline: what came back and what was done about it."""
    return f"{(row.kind or 'message').replace('_', ' ')}: {row.details.get('action', '')}"


def inbound_details(row: InboundMessage) -> dict[str, Any]:
    """What the timeline shows of an inbound message: never its bytes (they quote
    people's mail), only the classification's evidence and what was done."""
    keep = ("subject", "statuses", "back_on", "deputy_lead_id", "owner_told", "bounce")
    return {"inbound_id": row.id} | {k: row.details[k] for k in keep if k in row.details}


# --- the sales inbox ---------------------------------------------------------------------

# How far back the sales inbox shows replies and out-of-office notices.
NOTICE_DAYS = 14


class MailNotice(BaseModel):
    """A reply or an out-of-office reply of a rep's lead, as the sales inbox lists it."""

    lead_id: str
    lead: str  # the lead's name, else its address
    kind: str  # reply or auto_reply
    summary: str
    subject: str | None = None
    back_on: str | None = None
    deputy_lead_id: str | None = None
    deputy: str | None = None
    at: datetime


async def mail_notices(
    session: AsyncSession, rep: str | None, now: datetime, limit: int = 50
) -> list[MailNotice]:
    """The latest replies and out-of-office notices the owner was told about (`rep`'s own;
    every rep's for None), newest first, from the last `NOTICE_DAYS` days."""
    rows = await session.execute(
        select(InboundMessage, Lead)
        .join(Lead, Lead.id == InboundMessage.lead_id)
        .where(
            InboundMessage.kind.in_((InboundKind.REPLY.value, InboundKind.AUTO_REPLY.value)),
            InboundMessage.received_at >= now - timedelta(days=NOTICE_DAYS),
            Lead.erased_at.is_(None),
        )
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(limit * 4)  # only those a rep was told about are shown
    )
    found: list[MailNotice] = []
    for message, lead in rows:
        told = message.details.get("owner_told")
        if told is None or (rep is not None and told != rep):
            continue
        deputy_id = message.details.get("deputy_lead_id")
        deputy = await session.get(Lead, deputy_id) if deputy_id else None
        name = " ".join(filter(None, (lead.first_name, lead.last_name)))
        found.append(
            MailNotice(
                lead_id=lead.id,
                lead=name or lead.email or lead.id,
                kind=message.kind or "",
                summary=inbound_summary(message),
                subject=message.details.get("subject") or None,
                back_on=message.details.get("back_on"),
                deputy_lead_id=deputy_id,
                deputy=deputy.email if deputy and deputy.erased_at is None else None,
                at=as_utc(message.received_at) or message.received_at,
            )
        )
        if len(found) == limit:
            break
    return found

"""Consent: recording opt-ins (with evidence), double opt-in confirmation, one-click
unsubscribe. Every change is a `consent_records` row: what, when, source, IP, user agent
and the version of the consent text the lead saw."""

from __future__ import annotations

import uuid
from ipaddress import ip_address

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import ConsentRecord, Lead
from journeys.dsl import EventType
from starter.events import EventIn, record_event
from starter.journey_signals import journeys_of, signal_journeys
from starter.lifecycle import LeadLifecycle
from workflows.contracts import CONSENT_SIGNAL, LeadNudge

MARKETING_OK = "confirmed"


class ConsentIn(BaseModel):
    """How the lead opted in. Without `confirmed`, Nurture runs a double opt-in: a
    confirmation email, and no marketing email before the lead confirms."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"source": "whitepaper-form", "text_version": "2026-11"}},
    )

    source: str = Field(min_length=1, max_length=200, description="Form, import, event …")
    confirmed: bool = Field(
        default=False,
        description="True only when the lead already confirmed elsewhere (an import with "
        "evidence); the evidence is recorded as `imported`.",
    )
    text_version: str | None = Field(default=None, max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)

    @field_validator("ip")
    @classmethod
    def _is_an_ip(cls, value: str | None) -> str | None:
        return None if value is None else str(ip_address(value))


async def apply_consent(
    session: AsyncSession,
    lead: Lead,
    consent: ConsentIn | None,
    text_version: str,
    confirmed_action: str = "imported",
) -> bool:
    """Record the opt-in given with an enrollment (the caller commits); True when a double
    opt-in must start.

    A confirmed lead stays confirmed; an unsubscribed or bounced one is not re-subscribed
    by an enrollment without a new opt-in.
    """
    status = lead.consent_status
    if status == MARKETING_OK:
        return False
    if consent is None and status in ("unsubscribed", "bounced"):
        return False
    if consent is not None and consent.confirmed:
        lead.consent_status = MARKETING_OK
        action = confirmed_action
    else:
        lead.consent_status = "pending"
        action = "requested"
    session.add(
        ConsentRecord(
            lead_id=lead.id,
            action=action,
            source=consent.source if consent else "enrollment",
            ip=consent.ip if consent else None,
            user_agent=consent.user_agent if consent else None,
            text_version=(consent.text_version if consent else None) or text_version,
        )
    )
    return action == "requested"


async def confirm(
    lifecycle: LeadLifecycle,
    sessions: async_sessionmaker,
    lead_id: str,
    *,
    ip: str | None,
    user_agent: str | None,
    text_version: str,
) -> str:
    """The lead clicked "confirm": record the evidence, wake its held emails. Idempotent."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None or lead.erased_at is not None:
            return "erased"
        if lead.consent_status in ("pending", "expired"):
            lead.consent_status = MARKETING_OK
            session.add(
                ConsentRecord(
                    lead_id=lead.id,
                    action="confirmed",
                    source="double opt-in link",
                    ip=ip,
                    user_agent=(user_agent or "")[:300] or None,
                    text_version=text_version,
                )
            )
            await session.commit()
        status = lead.consent_status
        if status == MARKETING_OK:
            # Also on a repeat: it wakes held emails if the first request died before.
            await signal_journeys(
                lifecycle.client, await journeys_of(session, lead_id), CONSENT_SIGNAL, status
            )
            await lifecycle.nudge(lead_id, LeadNudge(cause="consent confirmed"))
        return status


async def unsubscribe(
    lifecycle: LeadLifecycle,
    sessions: async_sessionmaker,
    lead_id: str,
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """Unsubscribe the lead (RFC 8058 one-click POST, or the page's button). Repeating it
    changes nothing. True if the lead exists."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None or lead.erased_at is not None:
            return False
        if lead.consent_status != "unsubscribed":
            lead.consent_status = "unsubscribed"
            session.add(
                ConsentRecord(
                    lead_id=lead.id,
                    action="unsubscribed",
                    source=source,
                    ip=ip,
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
            await session.commit()
    # An engagement event too: journeys exit on it, scoring counts it against the lead. Its
    # fixed id makes a repeat harmless, and a repeat re-delivers it if the first POST died
    # before the journeys heard of it.
    await record_event(
        lifecycle.client,
        sessions,
        EventIn(lead_id=uuid.UUID(lead_id), type=EventType.UNSUBSCRIBE, event_id="unsubscribe"),
        lifecycle,
    )
    return True

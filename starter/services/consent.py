"""Consent: recording opt-ins (with evidence), double opt-in confirmation, one-click
unsubscribe. Every change is a `consent_records` row: what, when, source, IP, user agent
and the version of the consent text the lead saw."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from ipaddress import ip_address

from pydantic import ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import ConsentRecord, Lead, as_utc
from db.suppression_list import SuppressionList
from journeys.consent import (
    Claim,
    ClaimSource,
    ConsentAction,
    ConsentStatus,
    SuppressionReason,
    decide,
)
from journeys.dsl import EventType
from starter.services.events import EventIn, record_event
from starter.services.input_model import InputModel
from starter.services.journey_signals import journeys_of, signal_journeys
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import CONSENT_SIGNAL, LeadNudge


class ConsentIn(InputModel):
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


@dataclass(frozen=True)
class ConsentOutcome:
    """What recording a claim did: whether a double opt-in must start, and the
    suppression that kept the lead from being mailed (None: none)."""

    start_double_opt_in: bool
    suppressed: SuppressionReason | None


async def apply_consent(
    session: AsyncSession,
    lead: Lead,
    consent: ConsentIn | None,
    text_version: str,
    *,
    suppressions: SuppressionList,
    new_address: bool,
    source: ClaimSource = ClaimSource.INTEGRATION,
    confirmed_action: ConsentAction = ConsentAction.IMPORTED,
) -> ConsentOutcome:
    """Record the consent an enrollment or a form claims (the caller commits).

    A confirmed lead stays confirmed. A suppressed one (unsubscribed, bounced, complained,
    or an erased address that was) stays suppressed: the claim is kept as evidence of the
    claim (`claim_refused`), and only the lead's own form fill starts a double opt-in.
    `new_address`: the lead was created, or given another email, just now (its status
    says nothing about this address).
    """
    listed = await suppressions.reason(session, lead.email)
    decision = decide(
        None if new_address else ConsentStatus(lead.consent_status),
        listed,
        Claim(
            source=source,
            given=consent is not None,
            confirmed=consent is not None and consent.confirmed,
            confirmed_action=confirmed_action,
        ),
    )
    if decision.suppressed is not None and listed is None and lead.email is not None:
        # Suppressed by its status alone (it opted out before the list existed): list it
        # now, before anything (a re-subscription) moves the status on.
        await suppressions.add(session, lead.email, decision.suppressed)
    lead.consent_status = decision.status.value
    if decision.record is not None:
        session.add(
            ConsentRecord(
                lead_id=lead.id,
                action=decision.record.value,
                source=consent.source if consent else "enrollment",
                ip=consent.ip if consent else None,
                user_agent=consent.user_agent if consent else None,
                text_version=(consent.text_version if consent else None) or text_version,
            )
        )
    return ConsentOutcome(decision.start_double_opt_in, decision.suppressed)


class ConfirmOutcome(StrEnum):
    """What a click on a confirmation link did."""

    CONFIRMED = "confirmed"
    STALE = "stale"  # the link predates an unsubscribe (or bounce …): it re-subscribes nothing
    SUPPRESSED = "suppressed"  # the lead is suppressed and no re-subscription was asked for
    ERASED = "erased"


async def confirm(
    lifecycle: LeadLifecycle,
    sessions: async_sessionmaker,
    suppressions: SuppressionList,
    lead_id: str,
    *,
    issued_at: datetime,
    ip: str | None,
    user_agent: str | None,
    text_version: str,
) -> ConfirmOutcome:
    """The lead clicked "confirm": record the evidence, lift its address's suppression if
    the link was sent after it, and wake its held emails. Idempotent."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None or lead.erased_at is not None or lead.email is None:
            return ConfirmOutcome.ERASED
        entry = await suppressions.entry(session, lead.email)
        if entry is not None and issued_at <= as_utc(entry.at):
            return ConfirmOutcome.STALE
        status = ConsentStatus(lead.consent_status)
        if status is not ConsentStatus.CONFIRMED:
            if status not in (ConsentStatus.PENDING, ConsentStatus.EXPIRED) and entry is None:
                # Suppressed by its status alone (before the list existed): only a new
                # request, sent after it, can lift it.
                return ConfirmOutcome.STALE
            lead.consent_status = ConsentStatus.CONFIRMED.value
            if entry is not None:
                await suppressions.lift(session, lead.email)
            session.add(
                ConsentRecord(
                    lead_id=lead.id,
                    action=ConsentAction.CONFIRMED.value,
                    source="double opt-in link",
                    ip=ip,
                    user_agent=(user_agent or "")[:300] or None,
                    text_version=text_version,
                )
            )
            await session.commit()
        # Also on a repeat: it wakes held emails if the first request died before.
        await signal_journeys(
            lifecycle.client,
            await journeys_of(session, lead_id),
            CONSENT_SIGNAL,
            ConsentStatus.CONFIRMED.value,
        )
    await lifecycle.nudge(lead_id, LeadNudge(cause="consent confirmed"))
    return ConfirmOutcome.CONFIRMED


async def unsubscribe(
    lifecycle: LeadLifecycle,
    sessions: async_sessionmaker,
    suppressions: SuppressionList,
    lead_id: str,
    *,
    source: str,
    ip: str | None,
    user_agent: str | None,
) -> bool:
    """Unsubscribe the lead (RFC 8058 one-click POST, or the page's button) and put its
    address on the suppression list. Repeating it changes nothing. True if the lead exists."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id, with_for_update=True)
        if lead is None or lead.erased_at is not None or lead.email is None:
            return False
        if lead.consent_status == ConsentStatus.UNSUBSCRIBED:
            # Listed already, unless it opted out before the list existed.
            await suppressions.add(session, lead.email, SuppressionReason.UNSUBSCRIBED)
            await session.commit()
        else:
            lead.consent_status = ConsentStatus.UNSUBSCRIBED.value
            # A re-subscription in progress ends here too: its link is older than this entry.
            await suppressions.renew(session, lead.email, SuppressionReason.UNSUBSCRIBED)
            session.add(
                ConsentRecord(
                    lead_id=lead.id,
                    action=ConsentAction.UNSUBSCRIBED.value,
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

"""Reading the figures: the database rows the reporting functions turn into a funnel,
journey step statistics and A/B results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Row, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.email_links import clicks_per_link
from db.models import (
    EngagementEvent,
    Enrollment,
    InboundMessage,
    Lead,
    OutboxEmail,
    StageTransition,
    as_utc,
)
from journeys.dsl import JourneyDefinition
from journeys.outbox import OutboxStatus
from reporting.deliverability import (
    Feedback,
    FeedbackKind,
    SendSourceKind,
    Sent,
    SourceRates,
    deliverability_rates,
)
from reporting.funnel import FunnelReport, Interval, LeadHistory, funnel
from reporting.journey_stats import JourneyStats, SentEmail, journey_stats
from reporting.link_clicks import link_clicks
from starter.services.deliverability import was_transient
from starter.services.errors import InvalidParameter


class FunnelQuery(BaseModel):
    """Which leads the funnel counts: a cohort by creation time, a journey, a period size."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime | None = Field(default=None, description="Leads created at or after")
    until: AwareDatetime | None = Field(default=None, description="Leads created before")
    journey: str | None = Field(default=None, max_length=100, pattern=r"^[a-z0-9-]+$")
    interval: Interval | None = Field(default=None, description="Also per week or month")


async def funnel_report(sessions: async_sessionmaker, query: FunnelQuery) -> FunnelReport:
    """The funnel of the leads `query` selects."""
    if query.since and query.until and query.since >= query.until:
        raise InvalidParameter(("query", "since"), "since must be before until")
    leads = select(Lead.id, Lead.created_at, Lead.lifecycle_stage).where(Lead.erased_at.is_(None))
    if query.since is not None:
        leads = leads.where(Lead.created_at >= query.since)
    if query.until is not None:
        leads = leads.where(Lead.created_at < query.until)
    if query.journey is not None:
        leads = leads.where(
            Lead.id.in_(select(Enrollment.lead_id).where(Enrollment.journey == query.journey))
        )
    async with sessions() as session:
        rows = (await session.execute(leads)).all()
        ids = [row.id for row in rows]
        entered: dict[str, list[tuple[datetime, str]]] = {lead_id: [] for lead_id in ids}
        for batch in range(0, len(ids), 1000):
            transitions = await session.execute(
                select(StageTransition.lead_id, StageTransition.at, StageTransition.to_stage)
                .where(
                    StageTransition.lead_id.in_(ids[batch : batch + 1000]),
                    # A score-only update writes from = to; it isn't a stage change.
                    StageTransition.from_stage.is_distinct_from(StageTransition.to_stage),
                )
                .order_by(StageTransition.at, StageTransition.id)
            )
            for lead_id, at, stage in transitions:
                entered[lead_id].append((as_utc(at), stage))
    histories = [
        LeadHistory(
            created_at=as_utc(row.created_at),
            current_stage=row.lifecycle_stage,
            entered=entered[row.id],
        )
        for row in rows
    ]
    return funnel(histories, query.interval)


async def journey_report(
    sessions: async_sessionmaker, definition: JourneyDefinition
) -> JourneyStats:
    """Sent, opened, clicked and converted per email step of a journey, its A/B tests,
    and the clicks per link."""
    async with sessions() as session:
        outbox = await _sent_emails(session, definition)
        links = await clicks_per_link(
            session,
            OutboxEmail.workflow_id.like(f"journey:{definition.name}:%"),
            OutboxEmail.status == OutboxStatus.SENT,
        )
        lead_ids = sorted({row.lead_id for row in outbox})
        opened: set[int] = set()
        clicked: set[int] = set()
        mql_at: dict[str, datetime] = {}
        for batch in range(0, len(lead_ids), 1000):
            some = lead_ids[batch : batch + 1000]
            await _collect_opens_and_clicks(session, some, opened, clicked)
            mql_at.update(await _latest_mqls(session, some))
    # A click implies the email was opened, even when images were blocked.
    opened |= clicked
    sent = [
        SentEmail(
            outbox_id=row.id,
            lead_id=row.lead_id,
            step_id=row.step_id,
            template=row.template,
            sent_at=as_utc(row.sent_at or row.created_at),
        )
        for row in outbox
    ]
    stats = journey_stats(definition, sent, opened, clicked, mql_at)
    return stats.model_copy(update={"links": link_clicks(links)})


async def _sent_emails(
    session: AsyncSession, definition: JourneyDefinition
) -> Sequence[Row[int, str, str, str, datetime | None, datetime]]:
    """The journey's sent emails: outbox id, lead id, step id, template, sent_at and
    created_at."""
    return (
        await session.execute(
            select(
                OutboxEmail.id,
                OutboxEmail.lead_id,
                OutboxEmail.step_id,
                OutboxEmail.template,
                OutboxEmail.sent_at,
                OutboxEmail.created_at,
            ).where(
                OutboxEmail.workflow_id.like(f"journey:{definition.name}:%"),
                OutboxEmail.status == OutboxStatus.SENT,
            )
        )
    ).all()


async def _collect_opens_and_clicks(
    session: AsyncSession, lead_ids: list[str], opened: set[int], clicked: set[int]
) -> None:
    """Add the outbox ids of the leads' opened emails to `opened`, of clicked to `clicked`."""
    events = await session.execute(
        select(EngagementEvent.event_id).where(
            EngagementEvent.lead_id.in_(lead_ids),
            EngagementEvent.type.in_(("email_open", "email_click")),
        )
    )
    for (event_id,) in events:
        # Tracking ids: open-<outbox id>, click-<outbox id>-<link> (public_routes).
        kind, _, rest = event_id.partition("-")
        number = rest.split("-", 1)[0]
        if number.isdigit():
            (opened if kind == "open" else clicked).add(int(number))


async def _latest_mqls(session: AsyncSession, lead_ids: list[str]) -> dict[str, datetime]:
    """When each of the leads last became an MQL (a later cycle counts too)."""
    mqls = await session.execute(
        select(StageTransition.lead_id, StageTransition.at)
        .where(StageTransition.lead_id.in_(lead_ids), StageTransition.to_stage == "mql")
        .order_by(StageTransition.at)
    )
    mql_at: dict[str, datetime] = {}
    for lead_id, at in mqls:
        mql_at[lead_id] = as_utc(at)  # the latest MQL wins
    return mql_at


class DeliverabilityQuery(BaseModel):
    """Which messages the bounce and complaint rates count."""

    model_config = ConfigDict(extra="forbid")

    kind: SendSourceKind | None = Field(default=None, description="Journeys or broadcasts only")
    name: str | None = Field(
        default=None, max_length=100, pattern=r"^[A-Za-z0-9_-]+$", description="One source"
    )
    since: AwareDatetime | None = Field(default=None, description="Messages sent at or after")


async def deliverability_report(
    sessions: async_sessionmaker, query: DeliverabilityQuery
) -> list[SourceRates]:
    """Bounce and complaint rates per send source (each journey, each broadcast), with a
    warning where the complaint rate reaches Gmail's 0.3 %."""
    prefixes = [query.kind] if query.kind else list(SendSourceKind)
    wanted: list[ColumnElement[bool]] = [
        OutboxEmail.workflow_id.like(f"{p.value}:{query.name}:%" if query.name else f"{p.value}:%")
        for p in prefixes
    ]
    if query.name:  # a broadcast's rows are named `broadcast:<id>` exactly
        wanted += [OutboxEmail.workflow_id == f"{p.value}:{query.name}" for p in prefixes]
    sent_query = select(OutboxEmail.id, OutboxEmail.workflow_id).where(
        or_(*wanted),
        # A message that bounced later was sent all the same.
        OutboxEmail.status.in_((OutboxStatus.SENT, OutboxStatus.BOUNCED)),
    )
    if query.since is not None:
        sent_query = sent_query.where(OutboxEmail.sent_at >= query.since)
    async with sessions() as session:
        sent = [
            Sent(outbox_id, workflow_id)
            for outbox_id, workflow_id in await session.execute(sent_query)
        ]
        reports = await session.execute(
            select(InboundMessage.outbox_id, InboundMessage.kind, InboundMessage.details).where(
                InboundMessage.outbox_id.is_not(None),
                InboundMessage.kind.in_(("bounce", "complaint")),
            )
        )
        feedback = [
            Feedback(outbox_id, _feedback_kind(kind, details))
            for outbox_id, kind, details in reports
            if outbox_id is not None
        ]
    return deliverability_rates(sent, feedback)


def _feedback_kind(kind: str | None, details: dict[str, Any]) -> FeedbackKind:
    if kind == "complaint":
        return FeedbackKind.COMPLAINT
    return (
        FeedbackKind.TRANSIENT_BOUNCE if was_transient(details) else FeedbackKind.PERMANENT_BOUNCE
    )

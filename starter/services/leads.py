"""Reading a lead: its facts, stage, journeys (with their current step), emails and events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from db.models import (
    ConsentRecord,
    CrmHandover,
    EngagementEvent,
    Enrollment,
    InboundMessage,
    Lead,
    OutboxEmail,
    SalesFeedbackRecord,
    ScoreRecord,
    StageTransition,
    TriggerFiring,
    as_utc,
)
from db.suppression_list import SuppressionList
from journeys.bounce_policy import SoftBouncePolicy
from journeys.consent import ConsentStatus, SuppressionReason
from journeys.scoring import ScoreExplanation
from starter.services.deliverability import (
    Deliverability,
    deliverability_of,
    inbound_details,
    inbound_of,
    inbound_summary,
)
from starter.services.errors import LeadNotFound
from starter.services.lead_list import LeadIdentity, lead_facts
from starter.services.score_explanation import explain_score
from starter.services.segments import LeadSegment, segments_of
from workflows import search_attributes

T = TypeVar("T")


class JourneyView(BaseModel):
    journey: str
    version: str
    workflow_id: str
    status: str
    current_step: str | None
    enrolled_at: datetime
    started_by: str | None = Field(
        default=None, description="The trigger that started the journey (null: an enrollment)"
    )


class EmailView(BaseModel):
    step_id: str
    template: str
    status: str
    subject: str | None
    message_id: str
    sent_at: datetime | None


class EventView(BaseModel):
    event_id: str
    type: str
    occurred_at: datetime


class TransitionView(BaseModel):
    at: datetime
    from_stage: str | None
    to_stage: str
    cause: str
    actor: str


class HandoverView(BaseModel):
    id: int
    kind: str
    cycle: int | None
    owner: str | None
    routing_rule: str | None
    status: str
    created_at: datetime


class TimelineEntry(BaseModel):
    """One thing that happened to a lead, in time order across emails, events, score
    changes, stage transitions, handovers, consent, sales feedback and mail that came back
    (`mail`: bounces, complaints, auto-replies and replies, with what was done)."""

    at: datetime
    kind: Literal["email", "event", "score", "stage", "handover", "consent", "feedback", "mail"]
    summary: str
    details: dict[str, Any] = {}


class LeadView(LeadIdentity):
    """`GET /v1/leads/{lead_id}`."""

    consent_status: ConsentStatus
    suppressed: SuppressionReason | None = Field(
        default=None,
        description="The address is on the suppression list (and gets no marketing email)",
    )
    owner: str | None
    account_id: str | None
    source: str | None = Field(
        default=None, description="How the lead came to be when not by an enrollment"
    )
    created_at: datetime
    deliverability: Deliverability
    score: ScoreExplanation
    stage_transitions: list[TransitionView]
    handovers: list[HandoverView]
    journeys: list[JourneyView]
    emails: list[EmailView]
    events: list[EventView]
    timeline: list[TimelineEntry]
    segments: list[LeadSegment] = Field(default_factory=list)


async def _journey_view(
    client: Client, enrollment: Enrollment, started_by: dict[str, str]
) -> JourneyView:
    status, step = "unknown", None
    try:
        description = await client.get_workflow_handle(enrollment.workflow_id).describe()
        status = description.status.name.lower() if description.status else "unknown"
        step = description.typed_search_attributes.get(search_attributes.STEP)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        status = "not_found"  # retention on the Temporal server has removed it
    return JourneyView(
        journey=enrollment.journey,
        version=enrollment.journey_version,
        workflow_id=enrollment.workflow_id,
        status=status,
        current_step=step,
        enrolled_at=enrollment.enrolled_at,
        started_by=started_by.get(enrollment.workflow_id),
    )


async def _visible_lead(session: AsyncSession, lead_id: str) -> Lead:
    """The lead, unless it doesn't exist or was erased (`LeadNotFound`)."""
    lead = await session.get(Lead, lead_id)
    if lead is None or lead.erased_at is not None:
        raise LeadNotFound(lead_id, loc=("path", "lead_id"))
    return lead


async def read_score(sessions: async_sessionmaker, lead_id: str) -> ScoreExplanation:
    """The lead's score now, explained."""
    async with sessions() as session:
        lead = await _visible_lead(session, lead_id)
        return await explain_score(session, lead, datetime.now(UTC))


async def _rows_of(
    session: AsyncSession, model: type[T], lead_id: str, when: Any, *where: Any
) -> Sequence[T]:
    """The lead's rows of `model` (matching `where`), oldest first, ties by id."""
    table: Any = model
    query = select(model).where(table.lead_id == lead_id, *where).order_by(when, table.id)
    return (await session.execute(query)).scalars().all()


@dataclass(frozen=True)
class _LeadRows:
    """A lead's rows in the tables its view shows, each oldest first."""

    transitions: Sequence[StageTransition]
    handovers: Sequence[CrmHandover]
    enrollments: Sequence[Enrollment]
    emails: Sequence[OutboxEmail]
    events: Sequence[EngagementEvent]
    scores: Sequence[ScoreRecord]
    consents: Sequence[ConsentRecord]
    feedback: Sequence[SalesFeedbackRecord]


async def _lead_rows(session: AsyncSession, lead_id: str) -> _LeadRows:
    """Read the lead's rows; stage transitions only where the stage changed."""
    return _LeadRows(
        transitions=await _rows_of(
            session,
            StageTransition,
            lead_id,
            StageTransition.at,
            StageTransition.from_stage != StageTransition.to_stage,
        ),
        handovers=await _rows_of(session, CrmHandover, lead_id, CrmHandover.created_at),
        enrollments=await _rows_of(session, Enrollment, lead_id, Enrollment.enrolled_at),
        emails=await _rows_of(session, OutboxEmail, lead_id, OutboxEmail.created_at),
        events=await _rows_of(session, EngagementEvent, lead_id, EngagementEvent.occurred_at),
        scores=await _rows_of(session, ScoreRecord, lead_id, ScoreRecord.at),
        consents=await _rows_of(session, ConsentRecord, lead_id, ConsentRecord.at),
        feedback=await _rows_of(session, SalesFeedbackRecord, lead_id, SalesFeedbackRecord.at),
    )


async def read_lead(
    client: Client,
    sessions: async_sessionmaker,
    suppressions: SuppressionList,
    lead_id: str,
    soft_bounces: SoftBouncePolicy | None = None,
) -> LeadView:
    """Everything the API shows about one lead (`soft_bounces`: the window its
    deliverability status counts transient bounces in)."""
    async with sessions() as session:
        lead = await _visible_lead(session, lead_id)
        suppressed = await suppressions.reason(session, lead.email)
        now = datetime.now(UTC)
        score = await explain_score(session, lead, now)
        rows = await _lead_rows(session, lead_id)
        started_by = await _triggers_of(session, lead_id)
        policy = soft_bounces or SoftBouncePolicy()
        deliverability = await deliverability_of(session, lead, policy, now)
        inbound = await inbound_of(session, lead_id)
    timeline = build_timeline(
        emails=rows.emails,
        events=rows.events,
        scores=rows.scores,
        transitions=rows.transitions,
        handovers=rows.handovers,
        consents=rows.consents,
        feedback=rows.feedback,
    ) + [_mail_entry(m) for m in inbound]
    timeline.sort(key=lambda entry: entry.at)
    return LeadView(
        **lead_facts(lead),
        consent_status=lead.consent_status,
        suppressed=suppressed,
        source=lead.source,
        deliverability=deliverability,
        score=score,
        stage_transitions=[_transition_view(t) for t in rows.transitions],
        handovers=[_handover_view(h) for h in rows.handovers],
        journeys=[await _journey_view(client, e, started_by) for e in rows.enrollments],
        emails=[_email_view(e) for e in rows.emails],
        events=[
            EventView(event_id=e.event_id, type=e.type, occurred_at=e.occurred_at)
            for e in rows.events
        ],
        timeline=timeline,
        segments=await segments_of(sessions, lead_id),
    )


async def _triggers_of(session: AsyncSession, lead_id: str) -> dict[str, str]:
    """Which trigger first started each of the lead's journey workflows."""
    rows = await session.execute(
        select(TriggerFiring.workflow_id, TriggerFiring.trigger)
        .where(TriggerFiring.lead_id == lead_id, TriggerFiring.outcome == "enrolled")
        .order_by(TriggerFiring.id.desc())
    )
    return {workflow_id: trigger for workflow_id, trigger in rows if workflow_id}


def _transition_view(t: StageTransition) -> TransitionView:
    return TransitionView(
        at=t.at, from_stage=t.from_stage, to_stage=t.to_stage, cause=t.cause, actor=t.actor
    )


def _handover_view(h: CrmHandover) -> HandoverView:
    return HandoverView(
        id=h.id,
        kind=h.kind,
        cycle=h.cycle,
        owner=h.owner,
        routing_rule=h.routing_rule,
        status=h.status,
        created_at=h.created_at,
    )


def _email_view(e: OutboxEmail) -> EmailView:
    return EmailView(
        step_id=e.step_id,
        template=e.template,
        status=e.status,
        subject=e.subject,
        message_id=e.message_id,
        sent_at=e.sent_at,
    )


def build_timeline(
    *,
    emails: Sequence[OutboxEmail],
    events: Sequence[EngagementEvent],
    scores: Sequence[ScoreRecord],
    transitions: Sequence[StageTransition],
    handovers: Sequence[CrmHandover],
    consents: Sequence[ConsentRecord],
    feedback: Sequence[SalesFeedbackRecord],
) -> list[TimelineEntry]:
    """Everything that happened to a lead, oldest first."""
    entries = [
        *map(_email_entry, emails),
        *map(_event_entry, events),
        *map(_score_entry, scores),
        *map(_stage_entry, transitions),
        *(_handover_entry(h) for h in handovers if h.kind == "lead"),
        *map(_consent_entry, consents),
        *map(_feedback_entry, feedback),
    ]
    for entry in entries:
        entry.at = as_utc(entry.at)
    return sorted(entries, key=lambda entry: entry.at)


def _email_entry(e: OutboxEmail) -> TimelineEntry:
    return TimelineEntry(
        at=e.sent_at or e.created_at,
        kind="email",
        summary=f"email {e.template} {e.status}",
        details={"step_id": e.step_id, "subject": e.subject, "message_id": e.message_id},
    )


def _event_entry(e: EngagementEvent) -> TimelineEntry:
    return TimelineEntry(
        at=e.occurred_at, kind="event", summary=e.type, details={"event_id": e.event_id}
    )


def _score_entry(s: ScoreRecord) -> TimelineEntry:
    return TimelineEntry(
        at=s.at,
        kind="score",
        summary=f"score {s.total} (fit {s.fit}, behaviour {s.behaviour}): {s.cause}",
        details={"model": s.model, "contributions": s.contributions},
    )


def _stage_entry(t: StageTransition) -> TimelineEntry:
    return TimelineEntry(
        at=t.at,
        kind="stage",
        summary=f"{t.from_stage or 'new'} → {t.to_stage}",
        details={"cause": t.cause, "actor": t.actor},
    )


def _handover_entry(h: CrmHandover) -> TimelineEntry:
    return TimelineEntry(
        at=h.created_at,
        kind="handover",
        summary=f"handed over to {h.owner or 'sales'} ({h.routing_rule or 'unrouted'})",
        details={"cycle": h.cycle, "status": h.status, "score": h.score},
    )


def _consent_entry(c: ConsentRecord) -> TimelineEntry:
    return TimelineEntry(
        at=c.at,
        kind="consent",
        summary=f"consent {c.action}",
        details={"source": c.source, "text_version": c.text_version},
    )


def _mail_entry(m: InboundMessage) -> TimelineEntry:
    return TimelineEntry(
        at=as_utc(m.received_at) or m.received_at,
        kind="mail",
        summary=inbound_summary(m),
        details=inbound_details(m),
    )


def _feedback_entry(f: SalesFeedbackRecord) -> TimelineEntry:
    return TimelineEntry(
        at=f.at,
        kind="feedback",
        summary=f"sales {f.outcome}" + (f": {f.reason}" if f.reason else ""),
        details={"rep": f.rep, "from_stage": f.from_stage, "to_stage": f.to_stage},
    )

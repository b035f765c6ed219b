"""Reading a lead: its facts, stage, journeys (with their current step), emails and events."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.scoring import explain_score
from db.models import CrmHandover, EngagementEvent, Enrollment, Lead, OutboxEmail, StageTransition
from journeys.scoring import ScoreExplanation
from starter.errors import LeadNotFound
from workflows import search_attributes


class JourneyView(BaseModel):
    journey: str
    version: str
    workflow_id: str
    status: str
    current_step: str | None
    enrolled_at: datetime


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


class LeadView(BaseModel):
    """`GET /v1/leads/{lead_id}`."""

    id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    lifecycle_stage: str
    consent_status: str
    owner: str | None
    account_id: str | None
    created_at: datetime
    score: ScoreExplanation
    stage_transitions: list[TransitionView]
    handovers: list[HandoverView]
    journeys: list[JourneyView]
    emails: list[EmailView]
    events: list[EventView]


async def _journey_view(client: Client, enrollment: Enrollment) -> JourneyView:
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
    )


async def read_score(sessions: async_sessionmaker, lead_id: str) -> ScoreExplanation:
    """The lead's score now, explained."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.erased_at is not None:
            raise LeadNotFound(lead_id, loc=("path", "lead_id"))
        return await explain_score(session, lead, datetime.now(UTC))


async def read_lead(client: Client, sessions: async_sessionmaker, lead_id: str) -> LeadView:
    """Everything the API shows about one lead."""
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        if lead is None or lead.erased_at is not None:
            raise LeadNotFound(lead_id, loc=("path", "lead_id"))
        score = await explain_score(session, lead, datetime.now(UTC))
        transitions = (
            (
                await session.execute(
                    select(StageTransition)
                    .where(
                        StageTransition.lead_id == lead_id,
                        StageTransition.from_stage != StageTransition.to_stage,
                    )
                    .order_by(StageTransition.at, StageTransition.id)
                )
            )
            .scalars()
            .all()
        )
        handovers = (
            (
                await session.execute(
                    select(CrmHandover)
                    .where(CrmHandover.lead_id == lead_id)
                    .order_by(CrmHandover.created_at, CrmHandover.id)
                )
            )
            .scalars()
            .all()
        )
        enrollments = (
            (
                await session.execute(
                    select(Enrollment)
                    .where(Enrollment.lead_id == lead_id)
                    .order_by(Enrollment.enrolled_at)
                )
            )
            .scalars()
            .all()
        )
        emails = (
            (
                await session.execute(
                    select(OutboxEmail)
                    .where(OutboxEmail.lead_id == lead_id)
                    .order_by(OutboxEmail.created_at, OutboxEmail.id)
                )
            )
            .scalars()
            .all()
        )
        events = (
            (
                await session.execute(
                    select(EngagementEvent)
                    .where(EngagementEvent.lead_id == lead_id)
                    .order_by(EngagementEvent.occurred_at, EngagementEvent.id)
                )
            )
            .scalars()
            .all()
        )
    return LeadView(
        id=lead.id,
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        title=lead.title,
        lifecycle_stage=lead.lifecycle_stage,
        consent_status=lead.consent_status,
        owner=lead.owner,
        account_id=lead.account_id,
        created_at=lead.created_at,
        score=score,
        stage_transitions=[
            TransitionView(
                at=t.at, from_stage=t.from_stage, to_stage=t.to_stage, cause=t.cause, actor=t.actor
            )
            for t in transitions
        ],
        handovers=[
            HandoverView(
                id=h.id,
                kind=h.kind,
                cycle=h.cycle,
                owner=h.owner,
                routing_rule=h.routing_rule,
                status=h.status,
                created_at=h.created_at,
            )
            for h in handovers
        ],
        journeys=[await _journey_view(client, e) for e in enrollments],
        emails=[
            EmailView(
                step_id=e.step_id,
                template=e.template,
                status=e.status,
                subject=e.subject,
                message_id=e.message_id,
                sent_at=e.sent_at,
            )
            for e in emails
        ],
        events=[
            EventView(event_id=e.event_id, type=e.type, occurred_at=e.occurred_at) for e in events
        ],
    )

"""A lead's score explained: computed from its stored events and facts at a moment (the
API, the sales inbox and the scoring activity read it the same way)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EngagementEvent, Lead, as_utc
from journeys.accounts import email_domain
from journeys.dsl import EventType
from journeys.scoring import LeadFacts, ScoredEvent, ScoreExplanation, score_lead
from journeys.scoring_models import scoring_model_for


async def explain_score(session: AsyncSession, lead: Lead, now: datetime) -> ScoreExplanation:
    """The lead's score at `now`, with its contributions (computed, not stored)."""
    rows = await session.execute(
        select(EngagementEvent.type, EngagementEvent.occurred_at, EngagementEvent.properties).where(
            EngagementEvent.lead_id == lead.id
        )
    )
    events = [
        ScoredEvent(
            type=EventType(kind),
            occurred_at=as_utc(at) or now,
            url=str((props or {}).get("url") or "")[:2000] or None,
        )
        for kind, at, props in rows
        if kind in EventType.__members__.values()
    ]
    facts = LeadFacts(
        title=lead.title,
        company_size=lead.company_size,
        industry=lead.industry,
        country=lead.country,
        email_domain=email_domain(lead.email),
        created_at=as_utc(lead.created_at),
    )
    return score_lead(
        scoring_model_for(lead.persona),
        facts,
        events,
        now=now,
        adjustment=lead.score_adjustment,
        reset_at=as_utc(lead.behaviour_reset_at),
        carryover=lead.behaviour_carryover,
    )

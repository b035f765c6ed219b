"""A lead's score explained: computed from its stored events and facts at a moment (the
API, the sales inbox and the scoring activity read it the same way)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EngagementEvent, Lead, as_utc
from journeys.accounts import email_domain
from journeys.event_types import event_type_named, is_declared
from journeys.scoring import LeadFacts, ScoredEvent, ScoreExplanation, score_lead
from journeys.scoring_models import scoring_model_for


async def explain_score(session: AsyncSession, lead: Lead, now: datetime) -> ScoreExplanation:
    """The lead's score at `now`, with its contributions (computed, not stored)."""
    rows = await session.execute(
        select(EngagementEvent.type, EngagementEvent.occurred_at, EngagementEvent.properties).where(
            EngagementEvent.lead_id == lead.id
        )
    )
    # Every declared type, built-in or custom, can score; a stored type that is no longer
    # declared (there should be none: declarations are forever) scores nothing.
    events = [
        ScoredEvent(
            type=event_type_named(kind),
            occurred_at=as_utc(at) or now,
            url=str((props or {}).get("url") or "")[:2000] or None,
        )
        for kind, at, props in rows
        if is_declared(kind)
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

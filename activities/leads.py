"""Lead activities: branch decisions, send windows and `set` steps, reading the database.

Branches are decided here rather than in the workflow so that a lead's fit data (title,
company, industry) never enters workflow history: only the chosen step id does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    CHECK_CONDITIONS,
    CHOOSE_BRANCH,
    RESOLVE_WAIT,
    UPDATE_LEAD,
    CheckConditionsRequest,
    ChooseBranchRequest,
    ResolveWaitRequest,
    UpdateLeadRequest,
    UpdateLeadResult,
)
from activities.scoring import rescore
from db.models import Lead, LeadUpdate
from db.writes import insert_once
from journeys.conditions import choose_branch, first_holding
from journeys.dsl import LifecycleStage
from journeys.scoring import ScoreExplanation
from journeys.send_windows import next_window_start
from journeys.seniority import seniority_of
from starter.services.lead_workflow import LeadLifecycle
from starter.services.score_explanation import explain_score
from workflows.contracts import LeadNudge


async def load_lead(
    session: AsyncSession, lead_id: str, *, lock: bool = False, erased_too: bool = True
) -> Lead:
    """The lead an activity works on (`lock`: read FOR UPDATE). None there, or erased
    when `erased_too` is False, fails the activity for good: `LeadNotFound`, no retry."""
    # FOR NO KEY UPDATE: it still serialises writers of the lead, but lets inserts that
    # refer to it (an event's foreign key takes FOR KEY SHARE) through.
    lock_mode = {"key_share": True} if lock else None
    lead = await session.get(Lead, lead_id, with_for_update=lock_mode)
    if lead is None or (lead.erased_at is not None and not erased_too):
        raise ApplicationError(f"no lead {lead_id}", type="LeadNotFound", non_retryable=True)
    return lead


def lead_facts(lead: Lead, score: ScoreExplanation | None = None) -> dict[str, Any]:
    """What branch conditions may look at (`score`: computed now, else the stored one)."""
    return {
        "persona": lead.persona,
        "score": lead.score if score is None else score.total,
        "fit_score": lead.fit_score if score is None else score.fit,
        "behaviour_score": lead.behaviour_score if score is None else score.behaviour,
        "lifecycle_stage": lead.lifecycle_stage,
        "title": lead.title,
        "seniority": seniority_of(lead.title),
        "company_size": lead.company_size,
        "industry": lead.industry,
        "country": lead.country,
        "properties": lead.properties or {},
    }


class LeadActivities:
    """Activities that read or change a lead, with injected database sessions."""

    def __init__(self, sessions: async_sessionmaker, lifecycle: LeadLifecycle) -> None:
        self._sessions = sessions
        self._lifecycle = lifecycle

    async def _lead(self, session: AsyncSession, lead_id: str) -> Lead:
        return await load_lead(session, lead_id)

    @activity.defn(name=CHOOSE_BRANCH.name)
    async def choose_branch(self, request: ChooseBranchRequest) -> str:
        """The step the branch leads to for this lead."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
            return choose_branch(request.branch, await self._facts(session, lead, request.now))

    @activity.defn(name=CHECK_CONDITIONS.name)
    async def check_conditions(self, request: CheckConditionsRequest) -> str | None:
        """The step of the first condition outcome that holds for the lead, or None."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
            facts = await self._facts(session, lead, request.now)
            return first_holding(request.conditions, facts)

    async def _facts(self, session: Any, lead: Lead, now: datetime | None) -> dict[str, Any]:
        # The score as of now, not as last stored: an event that just arrived counts
        # before the lead workflow has got round to rescoring.
        explanation = await explain_score(session, lead, now or datetime.now(UTC))
        return lead_facts(lead, explanation)

    @activity.defn(name=RESOLVE_WAIT.name)
    async def resolve_wait(self, request: ResolveWaitRequest) -> datetime:
        """When a lead-dependent wait ends. A missing or unreadable moment ends it at once:
        the journey goes on rather than waiting forever on data that will not come."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
        step = request.step
        if step.send_window is not None:
            return next_window_start(
                request.now, lead.timezone, step.send_window, country=lead.country
            )
        assert step.until_property is not None
        raw = (lead.properties or {}).get(step.until_property)
        try:
            moment = datetime.fromisoformat(str(raw))
        except ValueError:
            activity.logger.warning("lead property %s is not a moment", step.until_property)
            return request.now
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return max(request.now, moment + step.offset)

    @activity.defn(name=UPDATE_LEAD.name)
    async def update_lead(self, request: UpdateLeadRequest) -> UpdateLeadResult:
        """Apply a journey's `set` step once (a `lead_updates` row guards it): score points
        and properties here; a stage is a request to the lead's lifecycle, which decides."""
        now = datetime.now(UTC)
        async with self._sessions() as session:
            # Locked: a rescore folds the lead's events into its tally (one at a time).
            lead = await load_lead(session, request.lead_id, lock=True)
            previous_score = lead.score
            if request.add_score:
                lead.score_adjustment += request.add_score
            if request.properties:
                lead.properties = {**(lead.properties or {}), **request.properties}
            if request.add_score:
                await rescore(session, lead, now, request.cause)
            applied = await insert_once(
                session, LeadUpdate(idempotency_key=request.idempotency_key, lead_id=lead.id)
            )
            lead = await self._lead(session, request.lead_id)
            if not applied:  # a retry of a change that was committed: report, don't redo
                previous_score = lead.score
            result = UpdateLeadResult(
                previous_stage=LifecycleStage(lead.lifecycle_stage),
                stage=LifecycleStage(lead.lifecycle_stage),
                previous_score=previous_score,
                score=lead.score,
            )
        if request.stage is not None or request.add_score:
            await self._lifecycle.nudge(
                request.lead_id,
                LeadNudge(cause=request.cause, stage=request.stage, requested_by=request.actor),
            )
        return result

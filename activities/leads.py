"""Lead activities: branch decisions, send windows and `set` steps, reading the database.

Branches are decided here rather than in the workflow so that a lead's fit data (title,
company, industry) never enters workflow history: only the chosen step id does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
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
from db.models import Lead, StageTransition
from db.writes import insert_once
from journeys.conditions import choose_branch, first_holding
from journeys.dsl import LifecycleStage
from journeys.send_windows import next_window_start


def lead_facts(lead: Lead) -> dict[str, Any]:
    """What branch conditions may look at."""
    return {
        "persona": lead.persona,
        "score": lead.score,
        "lifecycle_stage": lead.lifecycle_stage,
        "title": lead.title,
        "company_size": lead.company_size,
        "industry": lead.industry,
        "country": lead.country,
        "properties": lead.properties or {},
    }


class LeadActivities:
    """Activities that read or change a lead, with injected database sessions."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions

    async def _lead(self, session: Any, lead_id: str) -> Lead:
        lead = await session.get(Lead, lead_id)
        if lead is None:
            raise ApplicationError(f"no lead {lead_id}", type="LeadNotFound", non_retryable=True)
        return lead

    @activity.defn(name=CHOOSE_BRANCH)
    async def choose_branch(self, request: ChooseBranchRequest) -> str:
        """The step the branch leads to for this lead."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
            return choose_branch(request.branch, lead_facts(lead))

    @activity.defn(name=CHECK_CONDITIONS)
    async def check_conditions(self, request: CheckConditionsRequest) -> str | None:
        """The step of the first condition outcome that holds for the lead, or None."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
            return first_holding(request.conditions, lead_facts(lead))

    @activity.defn(name=RESOLVE_WAIT)
    async def resolve_wait(self, request: ResolveWaitRequest) -> datetime:
        """When a lead-dependent wait ends. A missing or unreadable moment ends it at once:
        the journey goes on rather than waiting forever on data that will not come."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
        step = request.step
        if step.send_window is not None:
            return next_window_start(request.now, lead.timezone, step.send_window)
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

    @activity.defn(name=UPDATE_LEAD)
    async def update_lead(self, request: UpdateLeadRequest) -> UpdateLeadResult:
        """Apply a `set` step once: the transition row's unique key guards the whole change."""
        async with self._sessions() as session:
            lead = await self._lead(session, request.lead_id)
            previous_stage, previous_score = lead.lifecycle_stage, lead.score
            marker = StageTransition(
                lead_id=lead.id,
                from_stage=lead.lifecycle_stage,
                to_stage=(request.stage or lead.lifecycle_stage),
                cause=request.cause,
                actor=request.actor,
                idempotency_key=request.idempotency_key,
            )
            if request.add_score:
                lead.score += request.add_score
            if request.stage is not None:
                lead.lifecycle_stage = request.stage.value
            if request.properties:
                lead.properties = {**(lead.properties or {}), **request.properties}
            applied = await insert_once(session, marker)
            if not applied:  # a retry of a change that was committed: report, don't redo
                lead = await self._lead(session, request.lead_id)
                previous_stage, previous_score = (
                    marker.from_stage or lead.lifecycle_stage,
                    lead.score,
                )
            return UpdateLeadResult(
                previous_stage=LifecycleStage(previous_stage),
                stage=LifecycleStage(lead.lifecycle_stage),
                previous_score=previous_score,
                score=lead.score,
            )

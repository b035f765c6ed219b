"""Lifecycle activities: stage changes (recorded once, announced to the lead's journeys),
enrollment into follow-up journeys, and journeys' handover requests."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.contracts import (
    CHANGE_STAGE,
    ENROLL_IN_JOURNEY,
    JOURNEY_FINISHED,
    REQUEST_HANDOVER,
    ChangeStageRequest,
    ChangeStageResult,
    EnrollInJourneyRequest,
    JourneyFinishedRequest,
    RequestHandoverRequest,
)
from activities.leads import load_lead
from db.models import (
    CrmHandover,
    Enrollment,
    FeedbackNote,
    Lead,
    SalesFeedbackRecord,
    StageTransition,
)
from db.writes import insert_once
from journeys.dsl import LifecycleStage
from journeys.handover import STATUS_AFTER_FEEDBACK, HandoverStatus
from journeys.registry import UnknownJourneyError, get_journey
from starter.services.enrollment import start_journey
from starter.services.journey_signals import journeys_of, signal_journeys
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import STAGE_SIGNAL, LeadNudge

log = logging.getLogger(__name__)


class LifecycleActivities:
    """Stage changes and enrollments, with an injected Temporal handle and sessions."""

    def __init__(self, lifecycle: LeadLifecycle, sessions: async_sessionmaker) -> None:
        self._lifecycle = lifecycle
        self._sessions = sessions

    @activity.defn(name=JOURNEY_FINISHED.name)
    async def journey_finished(self, request: JourneyFinishedRequest) -> None:
        """Record that the lead's run of a journey ended (once), then tell its lifecycle:
        segments on journey membership change."""
        async with self._sessions() as session:
            await session.execute(
                update(Enrollment)
                .where(
                    Enrollment.workflow_id == request.workflow_id,
                    Enrollment.completed_at.is_(None),
                )
                .values(completed_at=request.at)
            )
            await session.commit()
        await self._lifecycle.nudge(
            request.lead_id, LeadNudge(cause=f"journey {request.journey} ended"[:200])
        )

    @activity.defn(name=CHANGE_STAGE.name)
    async def change_stage(self, request: ChangeStageRequest) -> ChangeStageResult:
        """Apply a stage change once per key, then tell every journey of the lead.

        The transition row's unique key guards the whole change (lead fields, feedback
        record, CRM status); a retry finds it and only repeats the announcement.
        """
        async with self._sessions() as session:
            lead = await load_lead(session, request.lead_id, lock=True)
            previous = LifecycleStage(lead.lifecycle_stage)
            lead.lifecycle_stage = request.stage.value
            if request.new_mql_cycle:
                lead.mql_cycles += 1
            if request.counts_as_rejection:
                lead.rejections += 1
            if request.mql_blocked_until is not None:
                lead.mql_blocked_until = request.mql_blocked_until
            if request.behaviour_carryover is not None:
                lead.behaviour_reset_at = request.at
                lead.behaviour_carryover = request.behaviour_carryover
                lead.score_adjustment = round(lead.score_adjustment * request.behaviour_carryover)
            if request.feedback_outcome is not None:
                reason = request.feedback_reason
                if request.feedback_note_id is not None:
                    note = await session.get(FeedbackNote, request.feedback_note_id)
                    reason = note.text if note is not None else None
                session.add(
                    SalesFeedbackRecord(
                        idempotency_key=request.idempotency_key,
                        lead_id=lead.id,
                        outcome=request.feedback_outcome.value,
                        reason=reason,
                        rep=request.feedback_rep,
                        actor=request.actor,
                        from_stage=previous.value,
                        to_stage=request.stage.value,
                        at=request.at,
                    )
                )
                await session.execute(
                    update(CrmHandover)
                    .where(
                        CrmHandover.lead_id == lead.id,
                        CrmHandover.kind == "lead",
                        CrmHandover.cycle == lead.mql_cycles,
                        CrmHandover.status != HandoverStatus.REASSIGNED,
                    )
                    .values(status=STATUS_AFTER_FEEDBACK[request.feedback_outcome])
                )
            applied = await insert_once(
                session,
                StageTransition(
                    lead_id=lead.id,
                    from_stage=previous.value,
                    to_stage=request.stage.value,
                    cause=request.cause,
                    actor=request.actor,
                    at=request.at,
                    idempotency_key=request.idempotency_key,
                ),
            )
            if not applied:  # committed by an earlier attempt: report what it left
                lead = await session.get(Lead, request.lead_id, populate_existing=True)
                assert lead is not None
                transition = (
                    await session.execute(
                        select(StageTransition).where(
                            StageTransition.idempotency_key == request.idempotency_key
                        )
                    )
                ).scalar_one()
                previous = LifecycleStage(transition.from_stage or transition.to_stage)
            result = ChangeStageResult(
                previous_stage=previous,
                stage=LifecycleStage(lead.lifecycle_stage),
                mql_cycles=lead.mql_cycles,
                rejections=lead.rejections,
            )
            workflow_ids = await journeys_of(session, lead.id)
        await signal_journeys(self._lifecycle.client, workflow_ids, STAGE_SIGNAL, result.stage)
        return result

    @activity.defn(name=ENROLL_IN_JOURNEY.name)
    async def enroll_in_journey(self, request: EnrollInJourneyRequest) -> None:
        """Start the lead in a follow-up journey (recycled nurture, post-purchase)."""
        try:
            definition = get_journey(request.journey)
        except UnknownJourneyError:
            # A model naming a journey that isn't deployed: say so, don't retry forever.
            raise ApplicationError(
                f"no journey {request.journey!r}", type="UnknownJourney", non_retryable=True
            ) from None
        result = await start_journey(
            self._lifecycle.client,
            self._sessions,
            task_queue=self._lifecycle.task_queue,
            lead_id=request.lead_id,
            definition=definition,
            lifecycle=None,  # the lifecycle itself asked: no need to nudge it back
        )
        log.info("lead %s → %s: %s", request.lead_id, request.journey, result.status)

    @activity.defn(name=REQUEST_HANDOVER.name)
    async def request_handover(self, request: RequestHandoverRequest) -> None:
        """A journey's `hand_over` step: the lifecycle decides whether the lead becomes MQL."""
        await self._lifecycle.nudge(
            request.lead_id,
            LeadNudge(
                cause=f"journey {request.journey}: hand_over",
                handover_reason=request.reason,
                requested_by=f"journey:{request.journey}",
            ),
        )

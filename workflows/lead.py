"""`LeadWorkflow`: one per lead, the single owner of its score and lifecycle stage.

Journeys decide what to send; this workflow decides where the lead stands. It rescores the
lead when something happens (and on its own as scores decay), makes it an MQL when fit and
behaviour pass the persona's thresholds or a journey asks, hands it to sales once per MQL
cycle, runs the sales SLA on a timer, and applies sales feedback (validated as a Temporal
update, so feedback that doesn't fit the stage is refused before it reaches history).

Inputs, signals and updates carry ids, stages and reason codes, never personal data.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        BECOME_MQL,
        CHANGE_STAGE,
        ENROLL_IN_JOURNEY,
        EXPIRE_CONSENT,
        HAND_OVER_ACCOUNT,
        HAND_OVER_LEAD,
        NOTIFY_OWNER,
        SCORE_LEAD,
        SEGMENTS_AND_TRIGGERS,
        SEND_CONFIRMATION,
        ActivityRef,
        BecomeMqlRequest,
        ChangeStageRequest,
        ChangeStageResult,
        ConfirmationRequest,
        EnrollInJourneyRequest,
        ExpireConsentRequest,
        HandOverAccountRequest,
        HandOverLeadRequest,
        NotifyOwnerRequest,
        OwnerNotification,
        ScoreLeadRequest,
        SegmentsAndTriggersRequest,
        StageReachedRef,
    )
    from journeys.consent import DOI_EXPIRES_AFTER, DOI_REMINDER_AFTER, ConsentStatus
    from journeys.dsl import LifecycleStage
    from journeys.lifecycle import (
        MQL_ELIGIBLE,
        FeedbackOutcome,
        TransitionRefused,
        feedback_target,
        transition_allowed,
    )
    from journeys.scoring import LifecyclePolicy
    from workflows import search_attributes
    from workflows.activity_calls import call, call_local
    from workflows.contracts import (
        LEAD_NUDGE_SIGNAL,
        LEAD_STATUS_QUERY,
        LEAD_WORKFLOW_NAME,
        SALES_FEEDBACK_SIGNAL,
        SALES_FEEDBACK_UPDATE,
        TIMELINE_ENTRIES_KEPT,
        UPGRADE_SIGNAL,
        DoubleOptInPhase,
        FeedbackResult,
        LeadInput,
        LeadNudge,
        LeadState,
        LeadStatus,
        QueuedFeedback,
        SalesFeedback,
        SlaPhase,
        TimelineEntry,
    )
    from workflows.effects import EFFECT_RETRY

RequestT = TypeVar("RequestT", bound=BaseModel)
ResultT = TypeVar("ResultT")

# A cool-down ends, an SLA lapses or a score decays: these wake the workflow up.
_NEVER = None
# Sales feedback is answered as soon as it is validated; its effects run in the main loop
# (before, the update waited for the loop's lock, held while an email retried for as long
# as SMTP was down).
FEEDBACK_AT_ONCE = "feedback-answered-at-once"
# How long the update waits for its stage change to reach the database before answering
# with the decision alone (normally milliseconds; longer only while an effect is stuck).
FEEDBACK_EFFECT_WAIT = timedelta(seconds=1)
# Segments re-evaluated as things change, and journeys' triggers fired (issue 14).
SEGMENTS_AND_TRIGGERS_PATCH = "segments-and-triggers"
# A run's start and the nudge that started it handled in one pass (issue 18).
ONE_PASS_AT_START = "one-pass-at-start"
# Rescoring and segment evaluation as local activities (issue 18): short database work
# whose result the loop needs at once, now without a round trip through the server's task
# queue and with one history event each instead of three.
LOCAL_BOOKKEEPING = "lead-bookkeeping-local"
# The MQL stage change and the CRM handover as one activity (issue 18): one workflow task
# and one trip through the task queue less between qualifying and the CRM.
MQL_IN_ONE_ACTIVITY = "mql-in-one-activity"
ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)


class FeedbackRefused(ApplicationError):
    """Sales feedback that does not fit the lead's stage (the API answers 409)."""

    def __init__(self, message: str, current_stage: LifecycleStage | None) -> None:
        super().__init__(
            message,
            {"current_stage": current_stage.value if current_stage else None},
            type="FeedbackRefused",
            non_retryable=True,
        )


@workflow.defn(name=LEAD_WORKFLOW_NAME)
class LeadWorkflow:
    """The lifecycle of one lead: scoring, MQL handover, SLA, sales feedback, recycling."""

    @workflow.init
    def __init__(self, input: LeadInput) -> None:
        self._input = input
        self._state = input.state.model_copy(deep=True) if input.state else LeadState()
        self._policy: LifecyclePolicy | None = None
        # Sales feedback and the main loop both change the stage: one at a time.
        self._lock = asyncio.Lock()
        self._erased = False
        self._published: tuple[object, ...] | None = None
        # Stages reached since segments and triggers last ran (their triggers fire).
        self._stages_reached: list[StageReachedRef] = []
        # Score, stage or consent changed since segments were last evaluated.
        self._changed_since_segments = False
        # Asked to continue as new (`UPGRADE_SIGNAL`): a run that began before a patch
        # picks the patched code up in its next run.
        self._upgrade_requested = False
        # While `become_mql` runs, the lead is MQL in the database and the CRM may have it
        # (and send feedback) before the workflow has mirrored the stage: feedback then
        # waits for the mirror instead of being judged against the stage before.
        self._mql_in_flight = False

    # --- the loop ------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: LeadInput) -> None:
        async with self._lock:
            if workflow.patched(ONE_PASS_AT_START):
                # The nudge that started the workflow (signal-with-start) is already
                # pending: one pass acts on it, with one rescore and one evaluation of
                # segments. Before, a run rescored and evaluated for its start, then did
                # both again for that nudge: four activities per enrollment, now two.
                await self._act(starting=True)
            else:
                await self._rescore("lifecycle started")
                if workflow.patched(SEGMENTS_AND_TRIGGERS_PATCH):
                    # Every run starts with its segments current and its next recheck set
                    # (a lead upgraded onto this code has never been evaluated).
                    await self._segments_and_triggers([], workflow.now(), force=True)
        while not self._erased:
            await self._sleep_until_something_happens()
            async with self._lock:
                await self._act()
            if workflow.info().is_continue_as_new_suggested() or self._upgrade_requested:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    LeadInput(
                        lead_id=self._input.lead_id,
                        state=self._state,
                        effect_timeout_seconds=self._input.effect_timeout_seconds,
                        local_bookkeeping=self._input.local_bookkeeping,
                    )
                )

    async def _sleep_until_something_happens(self) -> None:
        deadline = self._next_deadline()
        timeout = None
        if deadline is not None:
            timeout = max(0.0, (deadline - workflow.now()).total_seconds())
        if timeout == 0.0:
            return
        try:
            await workflow.wait_condition(
                lambda: (
                    bool(self._state.pending)
                    or bool(self._state.feedback_queue)
                    or workflow.info().is_continue_as_new_suggested()
                    or self._upgrade_requested
                ),
                timeout=timeout,
            )
        except TimeoutError:
            pass

    def _next_deadline(self) -> datetime | None:
        """The earliest moment something is due without a signal: decay, cool-down, SLA."""
        candidates = [self._state.rescore_at, self._state.segments_recheck_at]
        stage = self._state.stage
        if stage == LifecycleStage.MQL and self._state.mql_at is not None and self._policy:
            if self._state.sla_phase == SlaPhase.RUNNING:
                candidates.append(self._state.mql_at + self._policy.sla_accept_within)
            elif self._state.sla_phase == SlaPhase.OWNER_REMINDED:
                candidates.append(
                    self._state.mql_at
                    + self._policy.sla_accept_within
                    + self._policy.sla_reassign_after
                )
        doi_phase = self._state.doi_phase
        if doi_phase != DoubleOptInPhase.NOT_RUNNING and self._state.doi_sent_at is not None:
            sent = doi_phase == DoubleOptInPhase.CONFIRMATION_SENT
            wait = DOI_REMINDER_AFTER if sent else DOI_EXPIRES_AFTER
            candidates.append(self._state.doi_sent_at + wait)
        if stage in MQL_ELIGIBLE and self._state.mql_blocked_until is not None:
            if self._state.mql_blocked_until > workflow.now():
                candidates.append(self._state.mql_blocked_until)
        due = [c for c in candidates if c is not None]
        return min(due) if due else _NEVER

    async def _act(self, *, starting: bool = False) -> None:
        """Act on what is pending and due. `starting`: the run's first pass, which always
        rescores and evaluates segments (a new run, or one continued as new)."""
        await self._apply_queued_feedback()
        nudges, self._state.pending = self._state.pending, []
        now = workflow.now()
        rescore_due = self._state.rescore_at is not None and self._state.rescore_at <= now
        unblocked = (
            self._state.mql_blocked_until is not None and self._state.mql_blocked_until <= now
        )
        if starting or nudges or rescore_due or unblocked:
            cause = "lifecycle started" if starting else "scheduled rescore"
            await self._rescore(nudges[0].cause if nudges else cause)
        if self._erased:
            return
        for nudge in nudges:
            if nudge.stage is not None and nudge.stage != LifecycleStage.MQL:
                await self._journey_stage(nudge)
        await self._run_double_opt_in(any(n.consent_requested for n in nudges))
        requested = next(
            (n for n in nudges if n.handover_reason or n.stage == LifecycleStage.MQL), None
        )
        await self._maybe_become_mql(requested)
        await self._run_sla()
        await self._maybe_hand_over_account()
        if workflow.patched(SEGMENTS_AND_TRIGGERS_PATCH):
            await self._segments_and_triggers(nudges, now, force=starting)

    async def _segments_and_triggers(
        self, nudges: list[LeadNudge], now: datetime, *, force: bool = False
    ) -> None:
        """Re-evaluate the lead's segments and fire triggers when something changed (an
        event, a score, a stage, consent) or a time-based segment condition may have
        flipped."""
        s = self._state
        recheck_due = s.segments_recheck_at is not None and s.segments_recheck_at <= now
        changed = nudges or self._stages_reached or self._changed_since_segments
        if not (force or changed or recheck_due) or self._erased:
            return
        self._changed_since_segments = False
        cause = nudges[0].cause if nudges else ("stage change" if self._stages_reached
                                                 else "segment window passed")  # fmt: skip
        result = await self._bookkeeping(
            SEGMENTS_AND_TRIGGERS,
            SegmentsAndTriggersRequest(
                lead_id=self._input.lead_id,
                now=now,
                cause=cause[:200],
                event_ids=tuple(n.event_id for n in nudges if n.event_id),
                stages=tuple(self._stages_reached),
            ),
        )
        self._stages_reached = []
        s.segments_recheck_at = result.recheck_at
        for segment in result.entered:
            self._note(f"entered segment {segment}")
        for segment in result.left:
            self._note(f"left segment {segment}")
        for journey in result.started:
            self._note(f"trigger started {journey}")

    # --- scoring and MQL ----------------------------------------------------------------

    async def _rescore(self, cause: str) -> None:
        result = await self._bookkeeping(
            SCORE_LEAD,
            ScoreLeadRequest(lead_id=self._input.lead_id, now=workflow.now(), cause=cause[:200]),
        )
        if result.erased:
            self._erased = True
            self._note("lead erased: lifecycle ends")
            return
        s = self._state
        if (result.total, result.stage, result.consent_status) != (
            s.score,
            s.stage,
            s.consent_status,
        ):
            self._changed_since_segments = True
        if result.total != s.score:
            self._note(f"score {s.score} → {result.total} ({cause})")
        s.score, s.fit, s.behaviour, s.qualifies = (
            result.total,
            result.fit,
            result.behaviour,
            result.qualifies,
        )
        if not s.feedback_queue:  # else the database lags the feedback already answered
            s.stage = result.stage
            s.mql_cycles, s.rejections = result.mql_cycles, result.rejections
            s.mql_blocked_until = result.mql_blocked_until
        s.owner, s.rescore_at = result.owner, result.rescore_at
        s.account_id = result.account_id
        s.consent_status = result.consent_status
        s.account_qualified = result.account_qualified
        self._policy = result.policy
        self._publish()

    async def _maybe_become_mql(self, requested: LeadNudge | None) -> None:
        s = self._state
        if s.stage not in MQL_ELIGIBLE or not (s.qualifies or requested is not None):
            return
        if s.mql_blocked_until is not None and workflow.now() < s.mql_blocked_until:
            if requested is not None:
                self._note(f"handover request ignored: cool-down until {s.mql_blocked_until}")
            return
        cycle = s.mql_cycles + 1
        if requested is not None:
            reason = requested.handover_reason or f"{requested.requested_by}: stage mql"
            actor = requested.requested_by or "journey"
        else:
            reason = f"score {s.score} (fit {s.fit}, behaviour {s.behaviour}) passed thresholds"
            actor = "scoring"
        key = f"mql:{self._input.lead_id}:{cycle}"
        handover_request = HandOverLeadRequest(
            lead_id=self._input.lead_id,
            idempotency_key=f"{key}/handover",
            cycle=cycle,
            reason=reason[:200],
        )
        stage_request = self._stage_request(
            LifecycleStage.MQL, key=f"{key}/stage", cause=reason, actor=actor, new_mql_cycle=True
        )
        both = None
        try:
            if workflow.patched(MQL_IN_ONE_ACTIVITY):
                self._mql_in_flight = True
                try:
                    # One attempt: the usual case, both at once.
                    both = await self._activity(
                        BECOME_MQL,
                        BecomeMqlRequest(stage=stage_request, handover=handover_request),
                        retry_policy=ONE_ATTEMPT,
                    )
                except ActivityError as failed:
                    if is_cancelled_exception(failed):
                        raise  # the workflow is being cancelled: not a failure to work around
                    # The CRM (or anything) failed it: the stage change is made and mirrored
                    # on its own, so sales can act on the MQL while the handover retries
                    # alone, as it always did. Both are idempotent per key.
            if both is not None:
                self._stage_changed(both.stage, stage_request)
                handover = both.handover
            else:
                await self._change_stage(stage_request)
                self._mql_in_flight = False  # mirrored: feedback is judged while it hands over
                handover = await self._activity(HAND_OVER_LEAD, handover_request)
        finally:
            self._mql_in_flight = False
        s.owner, s.mql_at, s.sla_phase = handover.owner, workflow.now(), SlaPhase.RUNNING
        self._note(f"MQL (cycle {cycle}): handed over to {handover.owner} ({handover.rule})")
        await self._notify(handover.owner, "mql_assigned", f"{key}/notify")
        self._publish()

    async def _run_sla(self) -> None:
        s, policy = self._state, self._policy
        if s.stage != LifecycleStage.MQL or s.mql_at is None or policy is None:
            return
        elapsed = workflow.now() - s.mql_at
        key = f"mql:{self._input.lead_id}:{s.mql_cycles}"
        if s.sla_phase == SlaPhase.RUNNING and elapsed >= policy.sla_accept_within:
            assert s.owner is not None
            await self._notify(s.owner, "sla_reminder", f"{key}/sla-reminder")
            s.sla_phase = SlaPhase.OWNER_REMINDED
            self._note(f"SLA: not accepted within {policy.sla_accept_within}; {s.owner} reminded")
        reassign_at = policy.sla_accept_within + policy.sla_reassign_after
        if s.sla_phase == SlaPhase.OWNER_REMINDED and elapsed >= reassign_at:
            previous = s.owner
            handover = await self._activity(
                HAND_OVER_LEAD,
                HandOverLeadRequest(
                    lead_id=self._input.lead_id,
                    idempotency_key=f"{key}/reassign",
                    cycle=s.mql_cycles,
                    reason=f"SLA lapsed for {previous}",
                    reassign_from=previous,
                ),
            )
            s.owner, s.sla_phase = handover.owner, SlaPhase.REASSIGNED
            self._note(f"SLA: still not accepted; reassigned from {previous} to {handover.owner}")
            await self._notify(handover.owner, "mql_assigned", f"{key}/reassign-notify")
            self._publish()

    async def _maybe_hand_over_account(self) -> None:
        s = self._state
        if not s.account_qualified or s.account_handed_over:
            return
        assert s.account_id is not None
        result = await self._activity(
            HAND_OVER_ACCOUNT,
            HandOverAccountRequest(
                account_id=s.account_id,
                lead_id=self._input.lead_id,
                idempotency_key=f"account:{s.account_id}",
            ),
        )
        await self._notify(result.owner, "account_qualified", f"account:{s.account_id}/notify")
        s.account_handed_over = True
        if result.created:
            self._note(f"account qualified: routed to {result.owner}")

    async def _run_double_opt_in(self, requested: bool) -> None:
        """Confirmation email on request, one reminder, then expiry — while still pending."""
        s = self._state
        if s.consent_status != ConsentStatus.PENDING:
            s.doi_phase = DoubleOptInPhase.NOT_RUNNING
            return
        now = workflow.now()
        key = f"consent:{self._input.lead_id}:{s.doi_round}"
        sent_at = s.doi_sent_at
        if requested and s.doi_phase == DoubleOptInPhase.NOT_RUNNING:
            s.doi_round += 1
            key = f"consent:{self._input.lead_id}:{s.doi_round}"
            await self._confirmation(f"{key}/confirm", reminder=False)
            s.doi_phase, s.doi_sent_at = DoubleOptInPhase.CONFIRMATION_SENT, now
            self._note("double opt-in: confirmation email sent")
        elif (
            s.doi_phase == DoubleOptInPhase.CONFIRMATION_SENT
            and sent_at
            and now >= sent_at + DOI_REMINDER_AFTER
        ):
            await self._confirmation(f"{key}/reminder", reminder=True)
            s.doi_phase = DoubleOptInPhase.REMINDED
            self._note("double opt-in: reminder sent")
        elif (
            s.doi_phase == DoubleOptInPhase.REMINDED
            and sent_at
            and now >= sent_at + DOI_EXPIRES_AFTER
        ):
            expired = await self._activity(
                EXPIRE_CONSENT, ExpireConsentRequest(lead_id=self._input.lead_id)
            )
            s.consent_status = ConsentStatus(expired)
            s.doi_phase = DoubleOptInPhase.NOT_RUNNING
            self._note(f"double opt-in: {s.consent_status.value}")

    async def _confirmation(self, key: str, *, reminder: bool) -> None:
        await self._activity(
            SEND_CONFIRMATION,
            ConfirmationRequest(
                lead_id=self._input.lead_id, idempotency_key=key, reminder=reminder
            ),
        )

    async def _journey_stage(self, nudge: LeadNudge) -> None:
        assert nudge.stage is not None and self._state.stage is not None
        if nudge.stage == self._state.stage:
            return
        if not transition_allowed(self._state.stage, nudge.stage):
            self._note(
                f"{nudge.requested_by} asked for {nudge.stage.value}: refused in stage "
                f"{self._state.stage.value}"
            )
            return
        await self._change_stage(
            self._stage_request(
                nudge.stage,
                key=f"stage:{self._input.lead_id}:{workflow.uuid4()}",
                cause=nudge.cause,
                actor=nudge.requested_by or "journey",
            )
        )

    # --- sales feedback -----------------------------------------------------------------

    def _target_for(
        self, feedback: SalesFeedback, *, stage: LifecycleStage | None = None
    ) -> LifecycleStage:
        """The stage `feedback` moves the lead to from its stage (or `stage`)."""
        stage = stage or self._state.stage
        if stage is None or self._policy is None:
            raise FeedbackRefused("the lead's lifecycle is still starting; retry", stage)
        try:
            return feedback_target(
                stage,
                feedback.outcome,
                rejections=self._state.rejections,
                max_rejections=self._policy.max_rejections,
            )
        except TransitionRefused as refused:
            raise FeedbackRefused(str(refused), stage) from None

    @workflow.update(name=SALES_FEEDBACK_UPDATE)
    async def sales_feedback(self, feedback: SalesFeedback) -> FeedbackResult:
        """Take sales feedback and answer at once; the validator refuses feedback that
        doesn't fit the stage. Its effects run in the main loop, whatever it is waiting on."""
        if workflow.patched(FEEDBACK_AT_ONCE):
            if self._mql_in_flight:
                await workflow.wait_condition(lambda: not self._mql_in_flight)
            result = self._accept_feedback(feedback)
            key = self._state.feedback_queue[-1].key
            try:
                await workflow.wait_condition(
                    lambda: all(item.key != key for item in self._state.feedback_queue),
                    timeout=FEEDBACK_EFFECT_WAIT,
                )
            except TimeoutError:
                pass  # the effects run when the loop is free; the decision stands
            return result
        async with self._lock:
            return await self._apply_feedback(feedback)

    @sales_feedback.validator
    def _validate_sales_feedback(self, feedback: SalesFeedback) -> None:
        # While the MQL activity runs, judge against MQL (the handler waits for the mirror
        # and judges again).
        self._target_for(feedback, stage=LifecycleStage.MQL if self._mql_in_flight else None)

    @workflow.signal(name=SALES_FEEDBACK_SIGNAL)
    async def sales_feedback_signal(self, feedback: SalesFeedback) -> None:
        """The same feedback, fire-and-forget (inbound CRM webhooks): refused ones are noted."""
        if workflow.patched(FEEDBACK_AT_ONCE):
            # A CRM's signal may come right behind the nudge that starts the workflow: judge
            # it once the lifecycle knows the lead's stage and policy.
            await workflow.wait_condition(lambda: self._policy is not None or self._erased)
            if self._mql_in_flight:
                await workflow.wait_condition(lambda: not self._mql_in_flight)
            if self._erased:
                return
            try:
                self._accept_feedback(feedback)
            except FeedbackRefused as refused:
                self._note(f"feedback {feedback.outcome.value} ignored: {refused.message}")
            return
        async with self._lock:
            try:
                await self._apply_feedback(feedback)
            except FeedbackRefused as refused:
                self._note(f"feedback {feedback.outcome.value} ignored: {refused.message}")

    def _accept_feedback(self, feedback: SalesFeedback) -> FeedbackResult:
        """Decide now (the stage the lead goes to, counted rejections, cool-down), queue
        the effects, answer. Later feedback is judged against the stage decided here."""
        target = self._target_for(feedback)  # refuses while the lifecycle is starting
        assert self._policy is not None
        s, now = self._state, workflow.now()
        previous = s.stage
        assert previous is not None
        s.feedback_queue.append(
            QueuedFeedback(
                feedback=feedback,
                previous=previous,
                target=target,
                key=f"feedback:{self._input.lead_id}:{workflow.uuid4()}",
                at=now,
            )
        )
        s.stage = target
        if feedback.outcome == FeedbackOutcome.REJECT:
            s.rejections += 1
        if target == LifecycleStage.RECYCLED:
            s.mql_blocked_until = now + self._policy.cooldown
        s.mql_at, s.sla_phase = None, SlaPhase.RUNNING
        self._publish()
        return FeedbackResult(
            lead_id=self._input.lead_id,
            outcome=feedback.outcome,
            previous_stage=previous,
            stage=target,
            owner=s.owner,
            rejections=s.rejections,
        )

    async def _apply_queued_feedback(self) -> None:
        """Run the effects of answered feedback, in order: the database's stage change,
        then recycling or the customer journey."""
        s = self._state
        while s.feedback_queue and self._policy is not None:
            item = s.feedback_queue[0]
            outcome = item.feedback.outcome
            rejection = outcome == FeedbackOutcome.REJECT
            back_to_nurture = item.target == LifecycleStage.RECYCLED
            await self._change_stage(
                self._stage_request(
                    item.target,
                    key=item.key,
                    cause=f"sales {outcome.value}",
                    actor=self._actor_of(item.feedback),
                    feedback=item.feedback,
                    counts_as_rejection=rejection,
                    mql_blocked_until=item.at + self._policy.cooldown if back_to_nurture else None,
                    behaviour_carryover=self._policy.reject_carryover if rejection else None,
                    at=item.at,
                ),
                mirror=False,
            )
            s.feedback_queue.pop(0)
            if back_to_nurture:
                await self._rescore(f"sales {outcome.value}")
                if self._erased:
                    return
                await self._enroll(self._policy.recycle_journey)
            elif item.target == LifecycleStage.CUSTOMER:
                await self._enroll(self._policy.customer_journey)

    @staticmethod
    def _actor_of(feedback: SalesFeedback) -> str:
        return feedback.actor or (f"rep:{feedback.rep}" if feedback.rep else "sales")

    async def _apply_feedback(self, feedback: SalesFeedback) -> FeedbackResult:
        assert self._policy is not None
        target = self._target_for(feedback)  # again: the stage may have moved since validation
        previous = self._state.stage
        assert previous is not None
        outcome = feedback.outcome
        rejection = outcome == FeedbackOutcome.REJECT
        back_to_nurture = target == LifecycleStage.RECYCLED
        now = workflow.now()
        reason = f": {feedback.reason}" if feedback.reason else ""
        await self._change_stage(
            self._stage_request(
                target,
                key=f"feedback:{self._input.lead_id}:{workflow.uuid4()}",
                cause=f"sales {outcome.value}{reason}",
                actor=f"rep:{feedback.rep}" if feedback.rep else "sales",
                feedback=feedback,
                counts_as_rejection=rejection,
                mql_blocked_until=now + self._policy.cooldown if back_to_nurture else None,
                behaviour_carryover=self._policy.reject_carryover if rejection else None,
            )
        )
        self._state.mql_at, self._state.sla_phase = None, SlaPhase.RUNNING
        if back_to_nurture:
            await self._rescore(f"sales {outcome.value}")
            await self._enroll(self._policy.recycle_journey)
        elif target == LifecycleStage.CUSTOMER:
            await self._enroll(self._policy.customer_journey)
        return FeedbackResult(
            lead_id=self._input.lead_id,
            outcome=outcome,
            previous_stage=previous,
            stage=target,
            owner=self._state.owner,
            rejections=self._state.rejections,
        )

    # --- effects ------------------------------------------------------------------------

    async def _change_stage(self, request: ChangeStageRequest, *, mirror: bool = True) -> None:
        """Change the stage in the database (once per key). `mirror`: take the stage and
        counts it reports back (not when answered feedback already moved them on)."""
        self._stage_changed(await self._activity(CHANGE_STAGE, request), request, mirror=mirror)

    def _stage_request(
        self,
        stage: LifecycleStage,
        *,
        key: str,
        cause: str,
        actor: str,
        new_mql_cycle: bool = False,
        feedback: SalesFeedback | None = None,
        counts_as_rejection: bool = False,
        mql_blocked_until: datetime | None = None,
        behaviour_carryover: float | None = None,
        at: datetime | None = None,
    ) -> ChangeStageRequest:
        return ChangeStageRequest(
            lead_id=self._input.lead_id,
            idempotency_key=key,
            stage=stage,
            cause=cause[:200],
            actor=actor[:200],
            new_mql_cycle=new_mql_cycle,
            feedback_outcome=feedback.outcome if feedback else None,
            feedback_note_id=feedback.note_id if feedback else None,
            feedback_reason=feedback.reason if feedback else None,
            feedback_rep=feedback.rep if feedback else None,
            counts_as_rejection=counts_as_rejection,
            mql_blocked_until=mql_blocked_until,
            behaviour_carryover=behaviour_carryover,
            at=at or workflow.now(),
        )

    def _stage_changed(
        self, result: ChangeStageResult, request: ChangeStageRequest, *, mirror: bool = True
    ) -> None:
        """Take in what the stage change `request` reported (see `_change_stage`)."""
        cause = request.cause
        if result.stage != result.previous_stage:
            self._stages_reached.append(
                StageReachedRef(stage=result.stage, key=request.idempotency_key)
            )
        s = self._state
        if not mirror:
            self._note(f"stage {result.previous_stage.value} → {result.stage.value} ({cause})")
            self._publish()
            return
        if result.stage != s.stage:
            self._note(f"stage {result.previous_stage.value} → {result.stage.value} ({cause})")
        s.mql_cycles = result.mql_cycles
        if not s.feedback_queue:  # else feedback taken meanwhile decided the stage already
            s.stage, s.rejections = result.stage, result.rejections
        if request.mql_blocked_until is not None:
            s.mql_blocked_until = request.mql_blocked_until
        self._publish()

    async def _notify(self, rep_id: str, template: OwnerNotification, key: str) -> None:
        await self._activity(
            NOTIFY_OWNER,
            NotifyOwnerRequest(
                lead_id=self._input.lead_id,
                rep_id=rep_id,
                template=template,
                idempotency_key=key,
            ),
        )

    async def _enroll(self, journey: str) -> None:
        await self._activity(
            ENROLL_IN_JOURNEY,
            EnrollInJourneyRequest(lead_id=self._input.lead_id, journey=journey),
        )
        self._note(f"enrolled in {journey}")

    async def _activity(
        self,
        ref: ActivityRef[RequestT, ResultT],
        request: RequestT,
        *,
        retry_policy: RetryPolicy = EFFECT_RETRY,
    ) -> ResultT:
        return await call(
            ref,
            request,
            start_to_close_timeout=timedelta(seconds=self._input.effect_timeout_seconds),
            retry_policy=retry_policy,
        )

    async def _bookkeeping(self, ref: ActivityRef[RequestT, ResultT], request: RequestT) -> ResultT:
        """Scoring and segments: local activities since LOCAL_BOOKKEEPING (a run that
        asked before keeps calling them as activities, as its history says)."""
        if not self._input.local_bookkeeping or not workflow.patched(LOCAL_BOOKKEEPING):
            return await self._activity(ref, request)
        return await call_local(
            ref,
            request,
            start_to_close_timeout=timedelta(seconds=self._input.effect_timeout_seconds),
        )

    def _publish(self) -> None:
        """Mirror stage, score and owner into search attributes (for the Temporal UI)."""
        s = self._state
        published = (s.stage, s.score, s.owner)
        if published == self._published:
            return  # an upsert is a history event: only when something changed
        self._published = published
        workflow.upsert_search_attributes(
            [
                search_attributes.STAGE.value_set(s.stage.value if s.stage else ""),
                search_attributes.SCORE.value_set(s.score),
                search_attributes.OWNER.value_set(s.owner or ""),
            ]
        )

    def _note(self, what: str) -> None:
        self._state.timeline.append(TimelineEntry(at=workflow.now(), step=None, what=what))
        del self._state.timeline[:-TIMELINE_ENTRIES_KEPT]

    # --- signals and queries ------------------------------------------------------------

    @workflow.signal(name=LEAD_NUDGE_SIGNAL)
    def lead_changed(self, nudge: LeadNudge) -> None:
        """Something changed (an event, a journey's request): rescore and act on it."""
        self._state.pending.append(nudge)

    @workflow.signal(name=UPGRADE_SIGNAL)
    def upgrade(self) -> None:
        """Continue as new at the next step boundary, so this lead runs the current code
        (`nurture leads upgrade` sends it to every lead workflow after a deploy)."""
        self._upgrade_requested = True

    @workflow.query(name=LEAD_STATUS_QUERY)
    def status(self) -> LeadStatus:
        """Stage, score, owner, SLA phase and the lifecycle's timeline."""
        s = self._state
        return LeadStatus(
            stage=s.stage,
            score=s.score,
            fit=s.fit,
            behaviour=s.behaviour,
            qualifies=s.qualifies,
            owner=s.owner,
            mql_cycles=s.mql_cycles,
            rejections=s.rejections,
            mql_blocked_until=s.mql_blocked_until,
            mql_at=s.mql_at,
            sla_phase=s.sla_phase,
            timeline=list(s.timeline),
        )

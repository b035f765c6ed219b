"""`JourneyWorkflow`: one lead's way through one journey, interpreted step by step.

The definition arrives in the input (a snapshot with its content hash), so a deploy that
edits the journey never changes a lead already inside it. The workflow orchestrates only:
effects happen in activities, called through their typed references in `activities.contracts`.

Changing what this interpreter does for an existing step kind changes the commands that
running workflows replay: put such a change behind `workflow.patched("<id>")` and keep
`tests/test_replay.py` green (see docs/journeys.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar, assert_never

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        CHECK_CONDITIONS,
        CHOOSE_BRANCH,
        HAND_OVER,
        JOURNEY_FINISHED,
        NOTIFY_OWNER,
        REQUEST_HANDOVER,
        RESOLVE_WAIT,
        SEND_EMAIL,
        UPDATE_LEAD,
        ActivityRef,
        CheckConditionsRequest,
        ChooseBranchRequest,
        HandOverRequest,
        JourneyFinishedRequest,
        NotifyOwnerRequest,
        RequestHandoverRequest,
        ResolveWaitRequest,
        SendEmailRequest,
        UpdateLeadRequest,
    )
    from journeys.consent import ConsentStatus
    from journeys.dsl import (
        AnyStep,
        Branch,
        End,
        HandOver,
        LifecycleStage,
        NotifyOwner,
        SendEmail,
        SetLeadFields,
        Wait,
        WaitForEvent,
    )
    from journeys.send_policy import answer_steps
    from journeys.variants import choose_variant
    from workflows import search_attributes
    from workflows.activity_calls import call
    from workflows.contracts import (
        CONSENT_SIGNAL,
        ENGAGEMENT_SIGNAL,
        PROGRESS_QUERY,
        SEEN_EVENT_IDS_KEPT,
        SEGMENT_LEFT_SIGNAL,
        STAGE_SIGNAL,
        TIMELINE_ENTRIES_KEPT,
        TIMELINE_QUERY,
        WORKFLOW_NAME,
        EngagementSignal,
        JourneyInput,
        JourneyOutcome,
        JourneyProgress,
        JourneyState,
        TimelineEntry,
    )
    from workflows.effects import EFFECT_ATTEMPT_TIMEOUT

RequestT = TypeVar("RequestT", bound=BaseModel)
ResultT = TypeVar("ResultT")

# Patch ids (see docs/journeys.md): journeys started before a change replay the old commands.
HANDOVER_VIA_LIFECYCLE = "handover-via-lead-workflow"
ANSWERS_AT_ONCE = "answers-at-once"
# The end of a run is recorded in the database (segments read journey membership).
COMPLETION_RECORDED = "journey-completion-recorded"


class _ContinueAsNew(Exception):
    """Raised inside a wait when the history should be cut; the run loop acts on it."""


@workflow.defn(name=WORKFLOW_NAME)
class JourneyWorkflow:
    """Interprets a `JourneyDefinition` for one lead."""

    @workflow.init
    def __init__(self, input: JourneyInput) -> None:
        self._input = input
        self._definition = input.definition
        self._state = input.state.model_copy(deep=True) if input.state else JourneyState()
        self._seen = set(self._state.seen_event_ids)
        self._finished = False
        self._consent_changes = 0
        self._goals_by_event = {
            g.on_event: g.name for g in self._definition.exit_goals if g.on_event
        }
        self._goals_by_stage = {
            g.on_stage: g.name for g in self._definition.exit_goals if g.on_stage
        }
        self._goals_by_segment_exit = {
            g.on_segment_exit: g.name for g in self._definition.exit_goals if g.on_segment_exit
        }

    # --- the interpreter ---------------------------------------------------------------

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyOutcome:
        step_id = self._state.current_step or self._definition.entry
        resuming = self._state.entered
        while self._state.exit_goal is None:
            step = self._definition.step(step_id)
            if not resuming:
                self._enter(step)
            resuming = False
            try:
                next_step = await self._execute(step)
            except _ContinueAsNew:
                return await self._continue_as_new()
            if next_step is None:
                return await self._finish(step.id)
            step_id = next_step
            self._state.current_step, self._state.entered = step_id, False
            if self._should_continue_as_new():
                return await self._continue_as_new()
        self._note(f"exit goal reached: {self._state.exit_goal}")
        return await self._finish(self._state.current_step or step_id)

    async def _execute(self, step: AnyStep) -> str | None:
        """Run one step; the id of the next one, or None at the end. One handler per kind."""
        match step:
            case SendEmail():
                return await self._send_email(step)
            case Wait():
                return await self._wait(step)
            case WaitForEvent():
                return await self._wait_for_event(step)
            case Branch():
                return await self._branch(step)
            case SetLeadFields():
                return await self._set(step)
            case HandOver():
                return await self._hand_over(step)
            case NotifyOwner():
                return await self._notify_owner(step)
            case End():
                return None
            case _:
                assert_never(step)

    # --- step handlers -----------------------------------------------------------------

    async def _send_email(self, step: SendEmail) -> str:
        template, variant = step.template, None
        if step.variants:
            chosen = choose_variant(self._input.lead_id, step.id, step.variants)
            template, variant = chosen.template, chosen.name
        assert template is not None
        # An answer to the lead's own action (the first email after the entry with no wait
        # before it, or `timing="answer"`: a pure function of the snapshotted definition)
        # goes out at once, past quiet hours and the frequency cap — on the first attempt,
        # and when a consent change (the lead confirming) wakes a held send; a send woken
        # only by its timer is a follow-up by then.
        # Replay: this changes only the *input* of SEND_EMAIL, never which commands are
        # issued or in what order, and replay compares an activity's id and type, not its
        # input; so old histories replay as they are. It does change what a running journey
        # would send next (a welcome held by quiet hours or consent when this was deployed
        # would go at once), so it is patched all the same: `patched` is asked once per run
        # (memoised), and a run whose first answer step was recorded before the patch keeps
        # the old behaviour to its end; new runs record the marker once, before that send.
        # Asked only at answer steps: journeys without one record no marker.
        answer = step.id in answer_steps(self._definition) and workflow.patched(ANSWERS_AT_ONCE)
        woken_by_lead = True
        while True:
            result = await self._activity(
                SEND_EMAIL,
                SendEmailRequest(
                    lead_id=self._input.lead_id,
                    workflow_id=workflow.info().workflow_id,
                    step_id=step.id,
                    template=template,
                    idempotency_key=self._effect_key(step.id),
                    now=workflow.now(),
                    answer=answer and woken_by_lead,
                ),
            )
            if result.status != "deferred":
                break
            # Not now (quiet hours, frequency cap, consent pending): never dropped, asked
            # again at `retry_at` with the same key, or sooner when consent changes.
            assert result.retry_at is not None
            self._note(
                f"email {template} deferred until {result.retry_at.isoformat()}: {result.reason}"
            )
            woken_by_lead = await self._wait_until(
                self._consent_changed_since(self._consent_changes), result.retry_at
            )
            if self._state.exit_goal is not None:
                return step.next
        if result.status == "sent":
            self._state.emails_sent.append(template)
            self._note(f"email sent: {template}" + (f" (variant {variant})" if variant else ""))
        else:
            self._note(f"email {template} skipped: {result.reason}")
        return step.next

    async def _wait(self, step: Wait) -> str:
        if self._state.wait_deadline is None:
            if step.duration is not None:
                deadline = workflow.now() + step.duration
            elif step.until is not None:
                deadline = step.until
            else:  # depends on the lead: its timezone or one of its properties
                deadline = await self._activity(
                    RESOLVE_WAIT,
                    ResolveWaitRequest(lead_id=self._input.lead_id, step=step, now=workflow.now()),
                )
            self._state.wait_deadline = deadline
            self._note(f"waiting until {deadline.isoformat()}")
        await self._wait_until(lambda: False, self._state.wait_deadline)
        self._state.wait_deadline = None
        return step.next

    async def _wait_for_event(self, step: WaitForEvent) -> str:
        if self._state.wait_deadline is None:
            self._state.wait_deadline = workflow.now() + step.timeout
            kinds = ", ".join(e for o in step.outcomes for e in o.events)
            if step.conditions:
                kinds = f"{kinds} or conditions" if kinds else "conditions"
            self._note(f"waiting for {kinds} until {self._state.wait_deadline.isoformat()}")

        def outcome() -> str | None:
            for candidate in step.outcomes:
                for event in candidate.events:
                    counted = self._state.event_counts.get(event, 0)
                    if counted > self._state.counts_at_last_wait.get(event, 0):
                        return candidate.next
            return None

        if step.conditions:
            next_step = await self._wait_for_event_or_condition(step, outcome)
        else:
            arrived = await self._wait_until(
                lambda: outcome() is not None, self._state.wait_deadline
            )
            next_step = outcome() if arrived else None
        if next_step is None:
            self._note("wait timed out")
            next_step = step.on_timeout
        self._state.counts_at_last_wait = dict(self._state.event_counts)
        self._state.wait_deadline = None
        assert next_step is not None
        return next_step

    async def _wait_for_event_or_condition(
        self, step: WaitForEvent, outcome: Callable[[], str | None]
    ) -> str | None:
        """Like a plain event wait, but also re-checks the conditions (an activity reads the
        lead) when the wait begins and whenever any event arrives."""
        assert self._state.wait_deadline is not None
        while True:
            if (event_next := outcome()) is not None:
                return event_next
            seen = self._state.events_received
            held = await self._activity(
                CHECK_CONDITIONS,
                CheckConditionsRequest(
                    lead_id=self._input.lead_id, conditions=step.conditions, now=workflow.now()
                ),
            )
            if held is not None:
                self._note(f"condition met → {held}")
                return held

            def woken(seen: int = seen) -> bool:
                return outcome() is not None or self._state.events_received != seen

            woke = await self._wait_until(woken, self._state.wait_deadline)
            if not woke:
                return None

    async def _branch(self, step: Branch) -> str:
        chosen = await self._activity(
            CHOOSE_BRANCH,
            ChooseBranchRequest(lead_id=self._input.lead_id, branch=step, now=workflow.now()),
        )
        self._note(f"branch → {chosen}")
        return chosen

    async def _set(self, step: SetLeadFields) -> str:
        if step.properties:
            self._note(f"properties set: {', '.join(sorted(step.properties))}")
        await self._update_lead(
            step.id,
            add_score=step.add_score,
            stage=step.stage,
            properties=step.properties,
            cause=f"journey {self._definition.name}, step {step.id}",
        )
        return step.next

    async def _notify_owner(self, step: NotifyOwner) -> str:
        await self._activity(
            NOTIFY_OWNER,
            NotifyOwnerRequest(
                lead_id=self._input.lead_id,
                template=step.template,
                idempotency_key=self._effect_key(step.id),
            ),
        )
        self._note(f"owner notified: {step.template}")
        return step.next

    async def _hand_over(self, step: HandOver) -> str:
        if workflow.patched(HANDOVER_VIA_LIFECYCLE):
            # The lead's lifecycle workflow decides: it hands over once per MQL cycle,
            # respects a cool-down after a rejection, and runs the sales SLA.
            await self._activity(
                REQUEST_HANDOVER,
                RequestHandoverRequest(
                    lead_id=self._input.lead_id,
                    reason=step.reason,
                    journey=self._definition.name,
                ),
            )
            self._note(f"handover requested: {step.reason}")
            return step.next
        await self._update_lead(step.id, stage=LifecycleStage.MQL, cause=f"handover: {step.reason}")
        if self._state.exit_goal is not None:
            return step.next  # becoming an MQL reached an exit goal; the loop ends the journey
        result = await self._activity(
            HAND_OVER,
            HandOverRequest(
                lead_id=self._input.lead_id,
                idempotency_key=self._effect_key(step.id),
                reason=step.reason,
            ),
        )
        self._note(f"handed over to sales (handover {result.handover_id})")
        return step.next

    # --- helpers -------------------------------------------------------------------------

    async def _activity(self, ref: ActivityRef[RequestT, ResultT], request: RequestT) -> ResultT:
        return await call(
            ref,
            request,
            start_to_close_timeout=(
                timedelta(seconds=self._input.effect_timeout_seconds)
                if self._input.effect_timeout_seconds
                else EFFECT_ATTEMPT_TIMEOUT
            ),
        )

    async def _update_lead(
        self,
        step_id: str,
        *,
        cause: str,
        add_score: int | None = None,
        stage: LifecycleStage | None = None,
        properties: dict[str, str | int | float | bool | None] | None = None,
    ) -> None:
        result = await self._activity(
            UPDATE_LEAD,
            UpdateLeadRequest(
                lead_id=self._input.lead_id,
                idempotency_key=self._effect_key(step_id),
                add_score=add_score,
                stage=stage,
                properties=properties or {},
                cause=cause,
                actor=f"journey:{self._definition.name}",
            ),
        )
        if result.stage != result.previous_stage:
            self._note(f"stage {result.previous_stage.value} → {result.stage.value}")
        if result.score != result.previous_score:
            self._note(f"score {result.previous_score} → {result.score}")
        self._state.score = result.score
        self._stage_reached(result.stage)

    def _effect_key(self, step_id: str) -> str:
        # Stable across retries, worker crashes and continue-as-new; distinct per visit.
        info = workflow.info()
        visit = self._state.visits[step_id]
        return f"{info.workflow_id}/{info.first_execution_run_id}/{step_id}/{visit}"

    def _consent_changed_since(self, seen: int) -> Callable[[], bool]:
        """A condition: a consent signal arrived since `seen` were counted."""
        return lambda: self._consent_changes != seen

    async def _wait_until(self, condition: Callable[[], object], deadline: datetime) -> bool:
        """Wait until `condition()` holds (True) or `deadline` passes (False).

        An exit goal ends the wait at once; so does a history that has grown too long
        (the wait resumes, with the same deadline, in the continued run).
        """
        check = condition
        remaining = (deadline - workflow.now()).total_seconds()
        if remaining > 0:
            try:
                await workflow.wait_condition(
                    lambda: (
                        bool(check())
                        or self._state.exit_goal is not None
                        or self._should_continue_as_new()
                    ),
                    timeout=remaining,
                )
            except TimeoutError:
                return False
        if self._state.exit_goal is not None:
            return bool(check())
        if check():
            return True
        if remaining > 0 and self._should_continue_as_new():
            raise _ContinueAsNew
        return False

    def _enter(self, step: AnyStep) -> None:
        self._state.current_step, self._state.entered = step.id, True
        self._state.visits[step.id] = self._state.visits.get(step.id, 0) + 1
        workflow.upsert_search_attributes([search_attributes.STEP.value_set(step.id)])

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        limit = self._input.continue_as_new_after
        if limit is not None and info.get_current_history_length() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    async def _continue_as_new(self) -> JourneyOutcome:
        # Signal handlers are synchronous, but wait anyway so a future async one can't be cut off.
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.continued_as_new += 1
        self._state.seen_event_ids = self._state.seen_event_ids[-SEEN_EVENT_IDS_KEPT:]
        workflow.continue_as_new(
            JourneyInput(
                lead_id=self._input.lead_id,
                definition=self._definition,
                state=self._state,
                continue_as_new_after=self._input.continue_as_new_after,
                effect_timeout_seconds=self._input.effect_timeout_seconds,
            )
        )

    async def _finish(self, step_id: str) -> JourneyOutcome:
        if workflow.patched(COMPLETION_RECORDED):
            # Segments may ask whether the lead is in, or has completed, this journey.
            info = workflow.info()
            await self._activity(
                JOURNEY_FINISHED,
                JourneyFinishedRequest(
                    lead_id=self._input.lead_id,
                    journey=self._definition.name,
                    workflow_id=info.workflow_id,
                    at=workflow.now(),
                ),
            )
        self._finished = True
        self._note("journey ended")
        return JourneyOutcome(
            journey=self._definition.name,
            ended_at_step=step_id,
            emails_sent=list(self._state.emails_sent),
            exit_goal=self._state.exit_goal,
            events_received=self._state.events_received,
        )

    def _note(self, what: str) -> None:
        self._state.timeline.append(
            TimelineEntry(at=workflow.now(), step=self._state.current_step, what=what)
        )
        del self._state.timeline[:-TIMELINE_ENTRIES_KEPT]

    def _stage_reached(self, stage: LifecycleStage) -> None:
        self._state.stage = stage
        if stage in self._goals_by_stage and self._state.exit_goal is None:
            self._state.exit_goal = self._goals_by_stage[stage]

    # --- handlers ----------------------------------------------------------------------

    @workflow.signal(name=ENGAGEMENT_SIGNAL)
    def engagement(self, event: EngagementSignal) -> None:
        """An engagement event; the same `event_id` delivered twice counts once."""
        if event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        self._state.seen_event_ids.append(event.event_id)
        if len(self._state.seen_event_ids) > 2 * SEEN_EVENT_IDS_KEPT:
            del self._state.seen_event_ids[:-SEEN_EVENT_IDS_KEPT]
            self._seen = set(self._state.seen_event_ids)
        self._state.events_received += 1
        self._state.event_counts[event.type] = self._state.event_counts.get(event.type, 0) + 1
        self._note(f"event: {event.type.value}")
        if event.type in self._goals_by_event and self._state.exit_goal is None:
            self._state.exit_goal = self._goals_by_event[event.type]

    @workflow.signal(name=STAGE_SIGNAL)
    def stage_changed(self, stage: LifecycleStage) -> None:
        """The lead's lifecycle stage changed elsewhere (sales feedback, another journey)."""
        if stage != self._state.stage:
            self._note(f"stage changed to {stage.value}")
        self._stage_reached(stage)

    @workflow.signal(name=SEGMENT_LEFT_SIGNAL)
    def segment_left(self, segments: list[str]) -> None:
        """The lead left these segments; an exit goal on one of them ends the journey."""
        for segment in segments:
            if segment in self._goals_by_segment_exit and self._state.exit_goal is None:
                self._note(f"left segment {segment}")
                self._state.exit_goal = self._goals_by_segment_exit[segment]

    @workflow.signal(name=CONSENT_SIGNAL)
    def consent_changed(self, status: ConsentStatus) -> None:
        """The lead confirmed (or withdrew) consent: a held send asks again now."""
        self._consent_changes += 1
        self._note(f"consent {status.value}")

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> JourneyProgress:
        """Where the lead stands: current step, emails sent, events received."""
        return JourneyProgress(
            journey=self._definition.name,
            version=self._definition.version,
            status="completed" if self._finished else "running",
            current_step=self._state.current_step,
            emails_sent=list(self._state.emails_sent),
            events_received=self._state.events_received,
            exit_goal=self._state.exit_goal,
        )

    @workflow.query(name=TIMELINE_QUERY)
    def timeline(self) -> list[TimelineEntry]:
        """What happened so far, at workflow time (the last entries)."""
        return list(self._state.timeline)

"""`JourneyWorkflow`: one lead's way through one journey, interpreted step by step.

The definition arrives in the input (a snapshot with its content hash), so a deploy that
edits the journey never changes a lead already inside it. The workflow orchestrates only:
effects happen in activities, called by name with the contracts of `activities.contracts`.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        SEND_EMAIL,
        EngagementSignal,
        SendEmailRequest,
        SendEmailResult,
    )
    from journeys.dsl import End, SendEmail, WaitForEvent
    from workflows import search_attributes
    from workflows.contracts import (
        ENGAGEMENT_SIGNAL,
        PROGRESS_QUERY,
        WORKFLOW_NAME,
        JourneyInput,
        JourneyOutcome,
        JourneyProgress,
        JourneyState,
    )

# Effects retry for as long as it takes (an SMTP outage must not lose a send); each
# attempt is bounded so that a hung connection is retried rather than waited on forever.
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
EFFECT_ATTEMPT_TIMEOUT = timedelta(seconds=60)


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

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyOutcome:
        step_id = self._state.current_step or self._definition.entry
        while True:
            self._enter(step_id)
            step = self._definition.step(step_id)
            match step:
                case SendEmail():
                    step_id = await self._send_email(step)
                case WaitForEvent():
                    step_id = await self._wait_for_event(step)
                case End():
                    self._finished = True
                    return JourneyOutcome(
                        journey=self._definition.name,
                        ended_at_step=step.id,
                        emails_sent=list(self._state.emails_sent),
                    )

    def _enter(self, step_id: str) -> None:
        self._state.current_step = step_id
        self._state.visits[step_id] = self._state.visits.get(step_id, 0) + 1
        workflow.upsert_search_attributes([search_attributes.STEP.value_set(step_id)])

    async def _send_email(self, step: SendEmail) -> str:
        info = workflow.info()
        visit = self._state.visits[step.id]
        # Stable across retries, worker crashes and continue-as-new; distinct per visit.
        key = f"{info.workflow_id}/{info.first_execution_run_id}/{step.id}/{visit}"
        result = await workflow.execute_activity(
            SEND_EMAIL,
            SendEmailRequest(
                lead_id=self._input.lead_id,
                workflow_id=info.workflow_id,
                step_id=step.id,
                template=step.template,
                idempotency_key=key,
            ),
            result_type=SendEmailResult,
            start_to_close_timeout=EFFECT_ATTEMPT_TIMEOUT,
            retry_policy=EFFECT_RETRY,
        )
        if result.status == "sent":
            self._state.emails_sent.append(step.template)
        return step.next

    async def _wait_for_event(self, step: WaitForEvent) -> str:
        def arrived() -> bool:
            return any(
                self._state.event_counts.get(t, 0) > self._state.counts_at_last_wait.get(t, 0)
                for t in step.events
            )

        try:
            await workflow.wait_condition(arrived, timeout=step.timeout, timeout_summary=step.id)
            outcome = step.on_event
        except TimeoutError:
            outcome = step.on_timeout
        self._state.counts_at_last_wait = dict(self._state.event_counts)
        return outcome

    @workflow.signal(name=ENGAGEMENT_SIGNAL)
    def engagement(self, event: EngagementSignal) -> None:
        """An engagement event; the same `event_id` delivered twice counts once."""
        if event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        self._state.seen_event_ids.append(event.event_id)
        self._state.event_counts[event.type] = self._state.event_counts.get(event.type, 0) + 1

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> JourneyProgress:
        """Where the lead stands: current step, emails sent, events received."""
        return JourneyProgress(
            journey=self._definition.name,
            version=self._definition.version,
            status="completed" if self._finished else "running",
            current_step=self._state.current_step,
            emails_sent=list(self._state.emails_sent),
            events_received=len(self._state.seen_event_ids),
        )

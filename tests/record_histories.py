"""Record the workflow histories that `tests/test_replay.py` replays.

    python -m tests.record_histories

Runs representative journeys on the time-skipping server and writes one JSON history per
run to `tests/histories/`, for the runs that have none yet: existing histories are never
re-recorded (they are what proves old workflows still replay). Add a run to record a new
behaviour; never delete a history to make a failing replay pass.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from pathlib import Path

from journeys.dsl import EventType
from journeys.lifecycle import FeedbackOutcome
from journeys.personas import PERSONAS
from journeys.registry import get_journey
from starter.dev.simulation import SimulationStack, parse_events, simulation_stack
from starter.services.enrollment import start_journey
from starter.services.events import EventIn, record_event
from tests.sample_journeys import CLICKY
from workflows.contracts import SalesFeedback, journey_workflow_id, lead_workflow_id

HISTORIES = Path(__file__).with_name("histories")


RUNS = {
    "welcome-clicked": ("welcome", "1d:email_click", {}),
    "welcome-no-click": ("welcome", "", {}),
    "welcome-series-unsubscribed": ("welcome-series", "3d:unsubscribe", {}),
    "whitepaper-nurture-handover": ("whitepaper-nurture", "12d:download,14d:demo_request", {}),
    "whitepaper-nurture-quiet": ("whitepaper-nurture", "", {}),
    "webinar-registration-attended": (
        "webinar-registration",
        "5d:webinar_attended",
        {"webinar_starts_at": None},
    ),
    "form-reminder": ("form-reminder", "", {}),
    "win-back": ("win-back", "", {}),
    "recycled-nurture": ("recycled-nurture", "40d:demo_request", {}),
    # Since the lead workflow: `hand_over` asks it (patched), and its own history.
    "whitepaper-nurture-handover-via-lead": (
        "whitepaper-nurture",
        "12d:download,14d:demo_request",
        {},
    ),
}
# Lead workflow histories: (run whose lead's lifecycle to record, days it runs).
LEAD_RUNS = {
    "lead-mql-sla-reassigned": ("whitepaper-nurture", "1d:demo_request", 5),
    # Issue 18: the start and its nudge in one pass; scoring and segments as local activities.
    "lead-one-pass-local-bookkeeping": ("whitepaper-nurture", "1d:download,2d:demo_request", 4),
    # Issue 18: the MQL stage change and the handover in one activity (`become_mql`).
    "lead-mql-in-one-activity": ("whitepaper-nurture", "1d:demo_request", 2),
}


async def _save(
    stack: SimulationStack, name: str, workflow_id: str, run_id: str | None = None
) -> None:
    history = await stack.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(json.dumps(json.loads(history.to_json()), indent=1))
    print(f"recorded {name}: {len(history.events)} events")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    async with simulation_stack() as stack:
        for name, (journey, events, days) in LEAD_RUNS.items():
            if (HISTORIES / f"{name}.json").exists():
                continue
            report = await stack.run(
                get_journey(journey),
                persona=PERSONAS["decision-maker"],
                days=days,
                events=parse_events(events),
            )
            await _save(stack, name, lead_workflow_id(report.lead_id))
        for name, (journey, events, properties) in RUNS.items():
            if (HISTORIES / f"{name}.json").exists():
                continue
            props = {k: v for k, v in properties.items() if v is not None}
            report = await stack.run(
                get_journey(journey),
                persona=PERSONAS["decision-maker"],
                days=60,
                events=parse_events(events),
                properties=props,
            )
            await _save(stack, name, journey_workflow_id(journey, report.lead_id))
        if not (HISTORIES / "lead-feedback-at-once.json").exists():
            await _record_feedback_at_once(stack)
        # A run that continued as new: its first run's history ends in ContinueAsNew.
        if (HISTORIES / "continued-as-new.json").exists():
            return
        report = await stack.run(
            CLICKY,
            persona=PERSONAS["practitioner"],
            days=0.01,
            continue_as_new_after=40,
            events=parse_events(",".join(["1m:email_click"] * 30)),
        )
        workflow_id = journey_workflow_id("clicky", report.lead_id)
        description = await stack.client.get_workflow_handle(workflow_id).describe()
        first_run = description.raw_description.workflow_execution_info.first_run_id
        await _save(stack, "continued-as-new", workflow_id, first_run)


async def _record_feedback_at_once(stack: SimulationStack) -> None:
    """A lead made an MQL, then rejected by a rep: the feedback is taken at once and its
    effects run in the loop (patched `feedback-answered-at-once`), then recycled. Driven
    by hand (a simulation ends its workflows with the run), and as a signal (a CRM's path,
    the same code): the Java test server can't serve this update's result."""
    lead_id = await stack._create_lead(PERSONAS["decision-maker"], {})
    await start_journey(
        stack.client,
        stack.sessions,
        task_queue=stack.settings.task_queue,
        lead_id=lead_id,
        definition=get_journey("whitepaper-nurture"),
    )
    await record_event(
        stack.client,
        stack.sessions,
        EventIn(
            lead_id=uuid.UUID(lead_id),
            type=EventType.DEMO_REQUEST,
            event_id="rec-demo",
            occurred_at=await stack.env.get_current_time(),
        ),
        stack.lifecycle,
    )
    await stack.env.sleep(timedelta(hours=1))
    await stack.lifecycle.feedback_later(
        lead_id,
        SalesFeedback(outcome=FeedbackOutcome.REJECT, note_id=1, rep="kim", actor="sales:kim"),
    )
    await stack.env.sleep(timedelta(days=1))
    await _save(stack, "lead-feedback-at-once", lead_workflow_id(lead_id))
    for workflow_id in (
        journey_workflow_id("whitepaper-nurture", lead_id),
        lead_workflow_id(lead_id),
    ):
        await stack.client.get_workflow_handle(workflow_id).terminate("recorded")


if __name__ == "__main__":
    asyncio.run(main())

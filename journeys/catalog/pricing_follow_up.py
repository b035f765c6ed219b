"""`pricing-follow-up`: a lead that keeps visiting the pricing page (segment
`pricing-visitors`: 3 views within 7 days) gets a sales-ready follow-up at once, a case
study three days later and a check-in a week after that — unless it books a demo, or stops
visiting (leaves the segment), which ends the journey."""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, WaitForEvent
from journeys.triggers import on_segment_entry
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="pricing-follow-up",
    description="On entering pricing-visitors: an offer to talk at once, a case study after "
    "3 days, a check-in after 10; ends on a demo request or when the visits stop.",
    entry="follow_up",
    steps=(
        SendEmail(id="follow_up", template="pricing_follow_up", next="await_demo"),
        WaitForEvent(
            id="await_demo",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(days=3),
            on_event="done",
            on_timeout="case_study",
        ),
        SendEmail(id="case_study", template="pricing_case_study", next="await_decision"),
        WaitForEvent(
            id="await_decision",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(days=7),
            on_event="done",
            on_timeout="check_in",
        ),
        SendEmail(id="check_in", template="pricing_check_in", next="done"),
        End(id="done"),
    ),
    exit_goals=(
        ExitGoal(name="demo_requested", on_event=EventType.DEMO_REQUEST),
        ExitGoal(name="stopped_visiting", on_segment_exit="pricing-visitors"),
    ),
    reentry={"policy": "periodic", "every": timedelta(days=30)},
)
TRIGGERS = (on_segment_entry("pricing-visitors"),)

"""`recycled-nurture`: for leads sales sent back — a cool-down, light touches, and a second
handover only when the lead shows real interest again.

The lead's lifecycle enrolls it here when sales reject it (the stage is already `recycled`
then, and the cool-down is held by the lifecycle); it leaves as soon as it is an MQL again.
"""

from datetime import timedelta

from journeys.dsl import (
    End,
    EventType,
    ExitGoal,
    HandOver,
    LifecycleStage,
    SendEmail,
    Wait,
    WaitForEvent,
)
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="recycled-nurture",
    description="Check-in, a month of cool-down with two light touches, and a handover again "
    "only after a demo request.",
    entry="checkin",
    steps=(
        SendEmail(id="checkin", template="recycled_checkin", next="cool_down", timing="scheduled"),
        Wait(id="cool_down", duration=timedelta(days=14), next="education"),
        SendEmail(id="education", template="recycled_education", next="pause"),
        Wait(id="pause", duration=timedelta(days=14), next="case_study"),
        SendEmail(id="case_study", template="recycled_case_study", next="await_interest"),
        WaitForEvent(
            id="await_interest",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(days=30),
            on_event="hand_over",
            on_timeout="done",
        ),
        HandOver(id="hand_over", reason="recycled-nurture: demo requested", next="done"),
        End(id="done"),
    ),
    exit_goals=(
        ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),
        ExitGoal(name="back-with-sales", on_stage=LifecycleStage.MQL),
        ExitGoal(name="became-customer", on_stage=LifecycleStage.CUSTOMER),
    ),
    reentry={"policy": "always"},
)

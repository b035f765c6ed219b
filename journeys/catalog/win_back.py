"""`win-back`: ask inactive recipients to stay; unsubscribe them if they don't answer.

Sending to people who no longer read hurts deliverability for everyone else, so silence
ends in an automatic unsubscribe rather than more email.
"""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, SetLeadFields, WaitForEvent
from journeys.triggers import on_segment_entry
from journeys.validation import define_journey

REENGAGED = (EventType.EMAIL_CLICK, EventType.EMAIL_OPEN, EventType.PAGE_VIEW)

JOURNEY = define_journey(
    name="win-back",
    description="We-miss-you, a last chance a week later, then an automatic unsubscribe.",
    entry="miss_you",
    steps=(
        SendEmail(
            id="miss_you", template="winback_miss_you", next="await_reply", timing="scheduled"
        ),
        WaitForEvent(
            id="await_reply",
            events=REENGAGED,
            timeout=timedelta(days=7),
            on_event="reengaged",
            on_timeout="last_chance",
        ),
        SendEmail(id="last_chance", template="winback_last_chance", next="await_last_reply"),
        WaitForEvent(
            id="await_last_reply",
            events=REENGAGED,
            timeout=timedelta(days=7),
            on_event="reengaged",
            on_timeout="unsubscribe",
        ),
        SetLeadFields(id="reengaged", properties={"win_back": "reengaged"}, next="done"),
        SetLeadFields(
            id="unsubscribe",
            properties={"win_back": "unsubscribed", "marketing_consent": "withdrawn"},
            next="done",
        ),
        End(id="done"),
    ),
    exit_goals=(ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),),
    reentry={"policy": "periodic", "every": timedelta(days=180)},
)

# Entered when the lead goes quiet: no open or click for 60 days (segment `dormant`).
TRIGGERS = (on_segment_entry("dormant"),)

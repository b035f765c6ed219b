"""`form-reminder`: remind a lead who started a form and left it half done."""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, WaitForEvent
from journeys.triggers import on_event
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="form-reminder",
    description="An hour after an abandoned form, a reminder; two days later, a last one.",
    entry="grace_period",
    steps=(
        WaitForEvent(
            id="grace_period",
            events=(EventType.FORM_SUBMIT,),
            timeout=timedelta(hours=1),
            on_event="done",
            on_timeout="remind",
        ),
        SendEmail(id="remind", template="form_reminder", next="await_submit"),
        WaitForEvent(
            id="await_submit",
            events=(EventType.FORM_SUBMIT,),
            timeout=timedelta(days=2),
            on_event="done",
            on_timeout="last_reminder",
        ),
        SendEmail(id="last_reminder", template="form_last_reminder", next="done"),
        End(id="done"),
    ),
    exit_goals=(ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),),
    reentry={"policy": "periodic", "every": timedelta(days=7)},
)

# A form started (the built-in `form_start`, or the declared `form_started` that names its
# form) and not submitted within the hour: the journey itself waits for the submit.
TRIGGERS = (on_event(EventType.FORM_START), on_event("form_started"))

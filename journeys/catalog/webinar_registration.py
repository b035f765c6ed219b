"""`webinar-registration`: confirm, remind a day and an hour before, then follow up.

The webinar's start is the lead property `webinar_starts_at` (ISO 8601), set when the
lead registers; its title, optionally, `webinar_title`.
"""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, Wait, WaitForEvent
from journeys.triggers import on_form
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="webinar-registration",
    description="Confirmation, reminders one day and one hour before, thank-you or recording.",
    entry="confirm",
    steps=(
        SendEmail(id="confirm", template="webinar_confirmation", next="day_before"),
        Wait(
            id="day_before",
            until_property="webinar_starts_at",
            offset=-timedelta(days=1),
            next="remind_day",
        ),
        SendEmail(id="remind_day", template="webinar_reminder_day", next="hour_before"),
        Wait(
            id="hour_before",
            until_property="webinar_starts_at",
            offset=-timedelta(hours=1),
            next="remind_hour",
        ),
        SendEmail(id="remind_hour", template="webinar_reminder_hour", next="await_attendance"),
        WaitForEvent(
            id="await_attendance",
            events=(EventType.WEBINAR_ATTENDED,),
            timeout=timedelta(hours=4),
            on_event="thank_you",
            on_timeout="missed",
        ),
        SendEmail(id="thank_you", template="webinar_thank_you", next="done"),
        SendEmail(id="missed", template="webinar_missed", next="done"),
        End(id="done"),
    ),
    exit_goals=(ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),),
    reentry={"policy": "always"},
    topic="events",
)

# A submission of the website form `webinar-signup` enrolls here (journeys/forms.py).
TRIGGERS = (on_form("webinar-signup"),)

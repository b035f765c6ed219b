"""`welcome`: greet a new lead, then follow up depending on whether they clicked."""

from datetime import timedelta

from journeys.dsl import End, EventType, SendEmail, WaitForEvent
from journeys.triggers import on_form
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="welcome",
    description="Welcome email at once; a next-step email if the lead clicks within 3 days, "
    "otherwise a reminder.",
    entry="welcome",
    steps=(
        SendEmail(id="welcome", template="welcome", next="await_click"),
        WaitForEvent(
            id="await_click",
            events=(EventType.EMAIL_CLICK,),
            timeout=timedelta(days=3),
            on_event="next_step",
            on_timeout="reminder",
        ),
        SendEmail(id="next_step", template="welcome_next_step", next="done"),
        SendEmail(id="reminder", template="welcome_reminder", next="done"),
        End(id="done"),
    ),
)

# A submission of the website form `contact` enrolls here (journeys/forms.py).
TRIGGERS = (on_form("contact"),)

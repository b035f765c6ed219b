"""`welcome-series`: a short onboarding series for new subscribers, ending in a demo offer."""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail, SendWindow, Wait, WaitForEvent
from journeys.triggers import on_form
from journeys.validation import define_journey

BUSINESS_HOURS = SendWindow(start_hour=9, end_hour=17, weekdays=(0, 1, 2, 3, 4))

JOURNEY = define_journey(
    name="welcome-series",
    description="Welcome, tips, a case study in business hours, and a demo offer to readers.",
    entry="welcome",
    steps=(
        SendEmail(id="welcome", template="ws_welcome", next="pause_1"),
        Wait(id="pause_1", duration=timedelta(days=2), next="tips"),
        SendEmail(id="tips", template="ws_tips", next="pause_2"),
        Wait(id="pause_2", duration=timedelta(days=3), next="business_hours"),
        Wait(id="business_hours", send_window=BUSINESS_HOURS, next="case_study"),
        SendEmail(id="case_study", template="ws_case_study", next="await_interest"),
        WaitForEvent(
            id="await_interest",
            events=(EventType.EMAIL_CLICK, EventType.DOWNLOAD),
            timeout=timedelta(days=5),
            on_event="demo_offer",
            on_timeout="done",
        ),
        SendEmail(id="demo_offer", template="ws_demo_offer", next="done"),
        End(id="done"),
    ),
    exit_goals=(
        ExitGoal(name="demo-requested", on_event=EventType.DEMO_REQUEST),
        ExitGoal(name="unsubscribed", on_event=EventType.UNSUBSCRIBE),
    ),
)

# A submission of the website form `newsletter` enrolls here (journeys/forms.py).
TRIGGERS = (on_form("newsletter"),)

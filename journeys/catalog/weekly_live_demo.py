"""`weekly-live-demo`: every Monday at 09:00 Berlin time, the members of
`pricing-visitors` who haven't asked for a demo are invited to the week's live demo (an
example of a scheduled trigger: a Temporal Schedule enrolls a segment's members)."""

from datetime import timedelta

from journeys.dsl import End, EventType, ExitGoal, SendEmail
from journeys.triggers import on_schedule
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="weekly-live-demo",
    description="Mondays 09:00 Europe/Berlin: pricing-visitors get the live-demo invitation.",
    entry="invite",
    steps=(
        SendEmail(id="invite", template="live_demo_invite", next="done", timing="scheduled"),
        End(id="done"),
    ),
    exit_goals=(ExitGoal(name="demo_requested", on_event=EventType.DEMO_REQUEST),),
    reentry={"policy": "periodic", "every": timedelta(days=6)},
    topic="events",
)
TRIGGERS = (on_schedule("0 9 * * MON", "Europe/Berlin", segment="pricing-visitors"),)

"""`renewal-reminder`: 30 days before the lead's `renewal_date` (an ISO date property), at
09:00 local time, a reminder to review the plan."""

from datetime import timedelta

from journeys.dsl import End, SendEmail
from journeys.triggers import on_date
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="renewal-reminder",
    description="A month before the renewal date: time to review the plan.",
    entry="remind",
    steps=(
        SendEmail(id="remind", template="renewal_reminder", next="done", timing="scheduled"),
        End(id="done"),
    ),
    reentry={"policy": "always"},
)
TRIGGERS = (on_date("renewal_date", offset=-timedelta(days=30), at_hour=9),)

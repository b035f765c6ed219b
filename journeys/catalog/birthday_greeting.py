"""`birthday-greeting`: a greeting on the lead's birthday (property `birthday`, an ISO
date), at 09:00 in the lead's timezone, every year."""

from journeys.dsl import End, SendEmail
from journeys.triggers import on_date
from journeys.validation import define_journey

JOURNEY = define_journey(
    name="birthday-greeting",
    description="Happy birthday at 09:00 local time on the day, once a year.",
    entry="greet",
    steps=(
        SendEmail(id="greet", template="birthday_greeting", next="done", timing="scheduled"),
        End(id="done"),
    ),
    reentry={"policy": "always"},
)
TRIGGERS = (on_date("birthday", every_year=True, at_hour=9),)

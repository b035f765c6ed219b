"""Small journeys the tests and the history recorder share."""

from datetime import timedelta

from journeys.dsl import End, EventType, JourneyDefinition, SendEmail, WaitForEvent
from journeys.validation import define_journey

# Waits an hour for a demo request; clicks don't end the wait, so they pile up in history.
CLICKY = define_journey(
    name="clicky",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="await_demo"),
        WaitForEvent(
            id="await_demo",
            events=(EventType.DEMO_REQUEST,),
            timeout=timedelta(hours=1),
            on_event="next_step",
            on_timeout="done",
        ),
        SendEmail(id="next_step", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


def with_short_waits(definition: JourneyDefinition, timeout: timedelta) -> JourneyDefinition:
    """The same journey with every event wait's timeout set to `timeout`."""
    data = definition.model_dump()
    for step in data["steps"]:
        if step["kind"] == "wait_for_event":
            step["timeout"] = timeout
    return JourneyDefinition.model_validate(data)

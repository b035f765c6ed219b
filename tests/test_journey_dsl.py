"""The journey DSL validates a journey when it is defined (pure, no Temporal)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from journeys.dsl import End, EventType, JourneyDefinition, SendEmail, WaitForEvent
from journeys.registry import all_journeys
from journeys.rendering import template_exists


@pytest.mark.parametrize("name", sorted(all_journeys()))
def test_every_registered_journey_is_valid_and_its_templates_exist(name: str) -> None:
    journey = all_journeys()[name]

    assert journey.name == name
    assert all(template_exists(t) for t in journey.templates()), journey.templates()


def test_a_broken_journey_reports_every_problem_in_one_error() -> None:
    with pytest.raises(ValidationError) as caught:
        JourneyDefinition(
            name="broken",
            entry="start",
            steps=(
                SendEmail(id="start", template="welcome", next="missing"),
                SendEmail(id="orphan", template="welcome", next="start"),
                SendEmail(id="orphan", template="welcome", next="start"),
            ),
        )

    [error] = caught.value.errors()
    assert "journey 'broken' is invalid" in error["msg"]
    for problem in (
        "step id 'orphan' is used more than once",
        "step 'start' goes to unknown step 'missing'",
        "step 'orphan' is unreachable from 'start'",
        "the journey has no end step",
    ):
        assert problem in error["msg"]


def test_a_wait_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        WaitForEvent(
            id="w",
            events=(EventType.EMAIL_CLICK,),
            timeout=timedelta(0),
            on_event="a",
            on_timeout="b",
        )


def test_the_version_is_a_content_hash() -> None:
    def journey(template: str) -> JourneyDefinition:
        return JourneyDefinition(
            name="tiny",
            entry="a",
            steps=(SendEmail(id="a", template=template, next="z"), End(id="z")),
        )

    assert journey("welcome").version == journey("welcome").version
    assert journey("welcome").version != journey("welcome_reminder").version


def test_definitions_are_frozen() -> None:
    journey = all_journeys()["welcome"]

    with pytest.raises(ValueError):
        journey.entry = "reminder"  # type: ignore[misc]  # frozen on purpose

"""The event type registry (pure, no Temporal): built-in and custom types declared as code,
each with a model of its properties, accepted wherever an event type is named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from journeys.dsl import (
    End,
    EventOutcome,
    EventType,
    ExitGoal,
    JourneyDefinition,
    WaitForEvent,
)
from journeys.event_types import (
    EVENT_TYPES,
    EventTypeClash,
    declare_event_type,
    declared_event_types,
    event_type_named,
    validate_properties,
)
from journeys.events.names import CustomEventType
from journeys.scoring import LeadFacts, ScoredEvent, score_lead
from journeys.scoring_models import PRACTITIONER
from workflows.contracts import EngagementSignal

CUSTOM = ("trial_started", "form_started", "cart_abandoned", "renewal_due", "email_reply")


class Nothing(BaseModel):
    pass


@pytest.fixture
def registry() -> Iterator[dict]:
    """The registry, restored after a test that declares types of its own."""
    saved = dict(EVENT_TYPES)
    yield EVENT_TYPES
    EVENT_TYPES.clear()
    EVENT_TYPES.update(saved)


def locations(caught: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str | int, ...]]:
    return [error["loc"] for error in caught.value.errors()]


def test_every_built_in_event_type_is_declared_as_built_in() -> None:
    for kind in EventType:
        assert EVENT_TYPES[kind.value].built_in, kind
        assert event_type_named(kind.value) is kind


def test_the_custom_event_types_are_declared_with_a_description() -> None:
    for name in CUSTOM:
        spec = EVENT_TYPES[name]
        assert not spec.built_in and spec.description
        assert event_type_named(name) == CustomEventType(name)
    assert set(declared_event_types()) == {k.value for k in EventType} | set(CUSTOM)


@pytest.mark.parametrize("name", ["page_view", "trial_started"])
def test_declaring_a_name_that_is_taken_is_refused(registry: dict, name: str) -> None:
    before = registry[name]

    with pytest.raises(EventTypeClash, match=name):
        declare_event_type(name, Nothing, "again")

    assert registry[name] is before


@pytest.mark.parametrize("name", ["Trial", "trial-started", "9lives", "", "x" * 41])
def test_a_name_that_is_not_lower_snake_case_is_refused(registry: dict, name: str) -> None:
    with pytest.raises(ValueError, match="lower_snake_case"):
        declare_event_type(name, Nothing)

    assert name not in registry


def test_a_new_declaration_is_accepted_wherever_an_event_type_is_named(registry: dict) -> None:
    declare_event_type("quote_requested", Nothing, "A quote was requested.")

    goal = ExitGoal(name="quoted", on_event="quote_requested")

    assert goal.on_event == "quote_requested" and goal.on_event.value == "quote_requested"
    assert "quote_requested" in declared_event_types()


def test_a_custom_types_properties_are_validated_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_properties("trial_started", {"trial_ends_at": "soon", "plna": "pro"})

    assert sorted(locations(caught)) == [("plan",), ("plna",), ("trial_ends_at",)]


@pytest.mark.parametrize(
    ("properties", "bad"),
    [
        ({"cart_value": -1, "currency": "EUR"}, "cart_value"),
        ({"cart_value": 10, "currency": "EURO"}, "currency"),
        ({"cart_value": "lots", "currency": "EUR"}, "cart_value"),
        ({"currency": "EUR"}, "cart_value"),
    ],
)
def test_an_abandoned_cart_needs_a_value_and_a_currency(properties: dict, bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_properties("cart_abandoned", properties)

    assert locations(caught) == [(bad,)]


def test_valid_custom_properties_are_kept_as_json() -> None:
    assert validate_properties("trial_started", {"plan": "pro", "trial_ends_at": "2026-12-31"}) == {
        "plan": "pro",
        "trial_ends_at": "2026-12-31",
    }
    assert validate_properties("cart_abandoned", {"cart_value": 120, "currency": "eur"}) == {
        "cart_value": 120.0,
        "currency": "EUR",
    }
    assert validate_properties("renewal_due", {"renewal_date": "2027-01-01"}) == {
        "renewal_date": "2027-01-01"
    }


def test_a_built_in_type_keeps_unknown_properties_but_types_the_ones_nurture_reads() -> None:
    free = {"url": "https://example.com/pricing", "campaign": "q4", "scroll": 0.8, "new": True}

    assert validate_properties("page_view", free) == free
    assert validate_properties("email_click", {"link": "pricing", "x": None}) == {
        "link": "pricing",
        "x": None,
    }
    with pytest.raises(ValidationError) as caught:
        validate_properties("page_view", {"url": 42})
    assert locations(caught) == [("url",)]


def test_a_journey_may_wait_for_a_custom_event() -> None:
    journey = JourneyDefinition(
        name="trial",
        entry="wait",
        steps=(
            WaitForEvent(
                id="wait",
                outcomes=(
                    EventOutcome(events=("trial_started", EventType.DEMO_REQUEST), next="done"),
                ),
                timeout=timedelta(days=7),
                on_timeout="done",
            ),
            End(id="done"),
        ),
        exit_goals=(ExitGoal(name="renewing", on_event="renewal_due"),),
    )

    [outcome] = journey.steps[0].outcomes  # type: ignore[union-attr]  # the first step is a wait
    assert outcome.events == ("trial_started", EventType.DEMO_REQUEST)
    assert isinstance(outcome.events[1], EventType)
    assert journey.model_dump(mode="json")["steps"][0]["outcomes"][0]["events"] == [
        "trial_started",
        "demo_request",
    ]
    assert JourneyDefinition.model_validate_json(journey.model_dump_json()) == journey


@pytest.mark.parametrize("where", ["wait", "exit goal"])
def test_the_dsl_refuses_an_undeclared_event_type_naming_the_declared_ones(where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        if where == "wait":
            WaitForEvent(
                id="wait",
                outcomes=(EventOutcome(events=("trial_begun",), next="done"),),
                timeout=timedelta(days=1),
                on_timeout="done",
            )
        else:
            ExitGoal(name="gone", on_event="trial_begun")

    [error] = [e for e in caught.value.errors() if e["type"] == "event_type_undeclared"]
    assert "'trial_begun' is not a declared event type" in error["msg"]
    assert all(name in error["msg"] for name in declared_event_types())


def test_an_engagement_signal_carries_custom_and_built_in_types_as_plain_names() -> None:
    for wire, kind in (("email_click", EventType), ("trial_started", CustomEventType)):
        payload = f'{{"event_id":"e-1","type":"{wire}","occurred_at":"2026-11-22T10:00:00Z"}}'

        signal = EngagementSignal.model_validate_json(payload)

        assert type(signal.type) is kind and signal.type.value == wire
        assert signal.model_dump_json() == payload
    with pytest.raises(ValidationError):
        EngagementSignal(event_id="e-1", type="telepathy", occurred_at=datetime.now(UTC))


def test_a_practitioner_who_starts_a_trial_scores_15_once() -> None:
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    trials = [ScoredEvent(type="trial_started", occurred_at=now) for _ in range(2)]

    explanation = score_lead(PRACTITIONER, LeadFacts(), trials, now=now)

    [line] = [c for c in explanation.contributions if c.label == "trial started"]
    assert (line.points, line.detail) == (15, "2 x +15, half-life 21 d, capped at 15")
    assert explanation.behaviour == 15

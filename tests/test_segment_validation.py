"""Every shipped segment validates; a broken one reports all its problems in one error."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from journeys.dsl import LEAD_ATTRIBUTES
from journeys.segment_dsl import (
    ATTRIBUTE_OPS,
    AnyCondition,
    FieldOp,
    FieldValue,
    SegmentDefinition,
    all_of,
    any_of,
    date_within,
    events,
    field,
    in_journey,
    no_events,
    not_,
    prop,
)
from journeys.segment_validation import SegmentValidationError, define_segment
from journeys.segments import UnknownSegmentError, all_segments, get_segment, registry_problems

DAY = timedelta(days=1)


def problems_of(
    condition: AnyCondition | dict[str, Any], *, journey_names: set[str] | None = None
) -> list[str]:
    with pytest.raises(SegmentValidationError) as caught:
        define_segment("broken", "", condition, journey_names=journey_names)
    return caught.value.problems


# --- the shipped segments -----------------------------------------------------------------


def test_the_registry_ships_the_segments_of_the_domain() -> None:
    assert {"pricing-visitors", "dormant", "hot-mqls"} <= set(all_segments())


def test_every_shipped_segment_names_only_known_event_types_and_journeys() -> None:
    assert registry_problems() == []


def test_asking_for_an_unknown_segment_raises_unknown_segment_error() -> None:
    with pytest.raises(UnknownSegmentError):
        get_segment("no-such-segment")


# --- one error for every problem ----------------------------------------------------------


def test_a_segment_with_three_mistakes_reports_all_three_in_one_error() -> None:
    with pytest.raises(SegmentValidationError) as caught:
        define_segment(
            "broken",
            "Three mistakes.",
            all_of(
                field("persona", "gt", 3),
                events("page_veiw", within=7 * DAY),
                no_events("email_open", for_=timedelta(0)),
            ),
        )

    assert caught.value.problems == [
        "condition.of.0.op: op 'gt' does not fit attribute 'persona' (use one of eq, ne, in, "
        "exists)",
        "condition.of.2.for: must be positive, not 0:00:00",
        "condition.of.1.type: unknown event type 'page_veiw'",
    ]
    assert caught.value.segment == "broken"
    assert all(p in str(caught.value) for p in caught.value.problems)


def test_a_bad_name_does_not_hide_the_problems_of_the_condition() -> None:
    with pytest.raises(SegmentValidationError) as caught:
        define_segment("Bad Name", "", events("page_view", at_least=0, within=DAY))

    assert caught.value.problems == [
        "name: String should match pattern '^[a-z0-9-]{1,64}$'",
        "condition.at_least: must be at least 1, not 0",
    ]


def test_a_segment_given_as_data_reports_every_shape_error_with_its_location() -> None:
    problems = problems_of(
        {
            "kind": "any",
            "of": [
                {"kind": "events", "type": "page_view", "within": "soon"},
                {"kind": "no_events", "types": ["email_open"]},
                {"kind": "sometimes"},
            ],
        }
    )

    assert [p.split(":")[0] for p in problems] == [
        "condition.any.of.0.events.within",
        "condition.any.of.1.no_events.for",
        "condition.any.of.2",
    ]


def test_a_valid_segment_given_as_data_equals_the_one_built_with_helpers() -> None:
    data = {"kind": "no_events", "types": ["email_open"], "for": "P60D"}

    built = define_segment("quiet", "", data)

    assert built == define_segment("quiet", "", no_events("email_open", for_=60 * DAY))


def test_a_definition_built_directly_runs_the_value_rules_too() -> None:
    with pytest.raises(ValidationError, match="must be positive"):
        SegmentDefinition(name="x", description="", condition=events("page_view", within=-DAY))


def test_a_definition_survives_a_round_trip_through_json() -> None:
    definition = get_segment("dormant")

    again = SegmentDefinition.model_validate_json(definition.model_dump_json(by_alias=True))

    assert again == definition
    assert again.version == definition.version


# --- the rules, one by one ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "op", "value"),
    [
        ("persona", "gt", "a"),
        ("lifecycle_stage", "lte", "mql"),
        ("score", "contains", "8"),
        ("topics", "eq", "data"),
        ("topics", "exists", None),
        ("account_qualified", "gt", True),
        ("created_at", "eq", "2025-01-01"),
    ],
)
def test_an_op_that_does_not_fit_its_attribute_is_a_problem(
    attribute: str, op: FieldOp, value: FieldValue
) -> None:
    assert problems_of(field(attribute, op, value)) == [
        f"condition.op: op {op!r} does not fit attribute {attribute!r} "
        f"(use one of {', '.join(ATTRIBUTE_OPS[attribute])})"
    ]


def test_every_lead_attribute_declares_the_ops_that_fit_it() -> None:
    assert set(LEAD_ATTRIBUTES) <= set(ATTRIBUTE_OPS)


def test_an_unknown_attribute_is_a_problem() -> None:
    assert problems_of(field("shoe_size", "eq", 42))[0].startswith(
        "condition.attribute: unknown attribute 'shoe_size'"
    )


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (field("score", "gte", "high"), "condition.value: score is a number, not 'high'"),
        (field("lifecycle_stage", "eq", "mq1"), "condition.value: 'mq1' is not a lifecycle_stage"),
        (field("consent_status", "in", ["confirmed", "nope"]), "'nope' is not a consent_status"),
        (field("account_qualified", "eq", "yes"), "account_qualified is true or false"),
        (field("created_at", "gt", "last week"), "created_at compares with an ISO date"),
        (field("score", "eq"), "condition.value: op 'eq' needs a value"),
        (field("score", "in", 80), "condition.value: `in` takes a non-empty list"),
        (field("title", "contains", ""), "condition.value: `contains` takes a non-empty string"),
    ],
)
def test_a_value_that_cannot_match_its_attribute_is_a_problem(
    condition: AnyCondition, problem: str
) -> None:
    assert any(problem in p for p in problems_of(condition))


def test_at_least_below_one_is_a_problem() -> None:
    assert problems_of(events("page_view", at_least=0, within=DAY)) == [
        "condition.at_least: must be at least 1, not 0"
    ]


@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        (events("page_view", within=timedelta(0)), "condition.within: must be positive"),
        (no_events("email_open", for_=-DAY), "condition.for: must be positive"),
        (date_within("trial_ends_at", timedelta(0)), "condition.within: must be positive"),
    ],
)
def test_a_window_that_is_not_positive_is_a_problem(condition: AnyCondition, problem: str) -> None:
    assert problems_of(condition)[0].startswith(problem)


def test_an_empty_combinator_or_silence_is_a_problem() -> None:
    assert problems_of(any_of(all_of(), no_events((), for_=DAY))) == [
        "condition.of.0.of: give at least one condition",
        "condition.of.1.types: name at least one event type",
    ]


def test_a_bad_event_property_filter_is_a_problem() -> None:
    condition = events("page_view", within=DAY, where=[prop("URL", "contains", "/pricing")])

    assert problems_of(condition) == ["condition.where.0.property: 'URL' is not [a-z0-9_]{1,64}"]


def test_unknown_event_types_in_a_silence_are_problems_with_their_index() -> None:
    assert problems_of(no_events(("email_open", "email_opened"), for_=DAY)) == [
        "condition.types.1: unknown event type 'email_opened'"
    ]


def test_event_types_can_be_given_explicitly_for_custom_types() -> None:
    definition = define_segment(
        "trials", "", events("trial_started", within=DAY), event_types={"trial_started"}
    )

    assert definition.name == "trials"


def test_an_unknown_journey_is_a_problem_when_journey_names_are_given() -> None:
    condition = not_(in_journey("welcom"))

    assert problems_of(condition, journey_names={"welcome"}) == [
        "condition.condition.journey: unknown journey 'welcom'"
    ]


def test_journeys_are_not_checked_at_definition_without_journey_names() -> None:
    assert define_segment("in-it", "", in_journey("defined-later")).name == "in-it"


def test_the_registry_check_reports_a_segment_naming_an_unknown_journey(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import journeys.segments as segments

    broken = define_segment("in-nowhere", "", in_journey("nowhere"))
    monkeypatch.setattr(segments, "all_segments", lambda: {"in-nowhere": broken})

    assert registry_problems(journey_names={"welcome"}) == [
        "segment 'in-nowhere': condition.journey: unknown journey 'nowhere'"
    ]

"""Pure journey logic: branch conditions, send windows, A/B assignment (no Temporal)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from journeys.conditions import choose_branch, holds
from journeys.dsl import Branch, BranchCase, Condition, SendWindow, Variant
from journeys.send_windows import next_window_start
from journeys.variants import choose_variant

FACTS = {
    "score": 42,
    "company_size": 250,
    "industry": "Software",
    "title": "VP Engineering",
    "persona": None,
    "properties": {"plan": "trial"},
}


@pytest.mark.parametrize(
    ("attribute", "op", "value", "expected"),
    [
        ("score", "gte", 42, True),
        ("score", "gt", 42, False),
        ("company_size", "lt", 1000, True),
        ("industry", "eq", "software", True),  # case-insensitive
        ("industry", "in", ("retail", "SOFTWARE"), True),
        ("title", "contains", "vp", True),
        ("persona", "eq", "decision-maker", False),  # unknown never matches…
        ("persona", "ne", "decision-maker", True),  # …except for ne
        ("persona", "exists", True, False),
        ("property:plan", "eq", "trial", True),
        ("property:missing", "exists", False, True),
        ("industry", "gt", 5, False),  # string vs number: doesn't hold, doesn't crash
    ],
)
def test_conditions(attribute: str, op: str, value: object, expected: bool) -> None:
    assert holds(Condition(attribute=attribute, op=op, value=value), FACTS) is expected


def test_a_branch_takes_the_first_case_that_holds_else_the_default() -> None:
    branch = Branch(
        id="b",
        cases=(
            BranchCase(when=(Condition(attribute="score", op="gte", value=80),), next="hot"),
            BranchCase(
                when=(
                    Condition(attribute="score", op="gte", value=40),
                    Condition(attribute="company_size", op="gte", value=200),
                ),
                next="warm",
            ),
        ),
        default="cold",
    )

    assert choose_branch(branch, FACTS) == "warm"
    assert choose_branch(branch, {**FACTS, "score": 90}) == "hot"
    assert choose_branch(branch, {**FACTS, "company_size": 10}) == "cold"


WEEKDAYS_9_TO_17 = SendWindow(start_hour=9, end_hour=17, weekdays=(0, 1, 2, 3, 4))


def test_inside_the_window_sends_now() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # Monday 11:00 in Berlin

    assert next_window_start(now, "Europe/Berlin", WEEKDAYS_9_TO_17) == now


def test_after_hours_waits_for_the_next_morning_in_the_lead_timezone() -> None:
    now = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)  # Monday 17:00 in New York

    assert next_window_start(now, "America/New_York", WEEKDAYS_9_TO_17) == datetime(
        2026, 11, 24, 14, 0, tzinfo=UTC
    )


def test_friday_evening_waits_for_monday() -> None:
    now = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # Friday

    assert next_window_start(now, None, WEEKDAYS_9_TO_17) == datetime(
        2026, 11, 30, 9, 0, tzinfo=UTC
    )


def test_an_unknown_timezone_falls_back_to_the_window_default() -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)

    assert next_window_start(now, "Mars/Olympus", WEEKDAYS_9_TO_17) == datetime(
        2026, 11, 23, 9, 0, tzinfo=UTC
    )


VARIANTS = (Variant(name="a", template="x", weight=3), Variant(name="b", template="y", weight=1))


def test_a_lead_always_gets_the_same_variant() -> None:
    assert {choose_variant("lead-1", "step", VARIANTS).name for _ in range(20)} == {
        choose_variant("lead-1", "step", VARIANTS).name
    }


def test_variants_follow_their_weights_across_leads() -> None:
    counts = Counter(choose_variant(f"lead-{i}", "step", VARIANTS).name for i in range(4000))

    assert 0.70 < counts["a"] / 4000 < 0.80

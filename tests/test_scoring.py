"""Scoring models: fit, behaviour with caps and decay, negative signals, explanations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from journeys.dsl import EventType
from journeys.scoring import LeadFacts, ScoredEvent, decay_factor, score_lead
from journeys.scoring_models import DECISION_MAKER, SCORING_MODELS, STUDENT, scoring_model_for

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
VP = LeadFacts(
    title="VP Marketing",
    company_size=800,
    industry="manufacturing",
    country="DE",
    email_domain="acme.example",
    created_at=NOW - timedelta(days=1),
)


def events(
    kind: EventType, n: int, *, days_ago: float = 0, url: str | None = None
) -> list[ScoredEvent]:
    at = NOW - timedelta(days=days_ago)
    return [ScoredEvent(type=kind, occurred_at=at, url=url) for _ in range(n)]


def test_fit_adds_the_first_matching_rule_of_each_group() -> None:
    explanation = score_lead(DECISION_MAKER, VP, [], now=NOW)
    labels = [c.label for c in explanation.contributions if c.kind == "fit"]
    assert labels == ["VP or head title", "company 200-4,999", "target industry", "served country"]
    assert explanation.fit == 60


def test_title_keywords_match_whole_words_only() -> None:
    director = VP.model_copy(update={"title": "Director of Marketing"})
    labels = [c.label for c in score_lead(DECISION_MAKER, director, [], now=NOW).contributions]
    assert labels[0] == "director title"  # not C-level, though "director" contains "cto"


def test_free_mail_competitors_and_students_are_penalised() -> None:
    student = VP.model_copy(update={"title": "Student", "email_domain": "gmail.com"})
    assert score_lead(DECISION_MAKER, student, [], now=NOW).fit == 35 - 40 - 15
    rival = VP.model_copy(update={"email_domain": "hubspot.com"})
    assert score_lead(DECISION_MAKER, rival, [], now=NOW).fit == 60 - 100


def test_behaviour_is_capped_per_event_type() -> None:
    explanation = score_lead(DECISION_MAKER, VP, events(EventType.EMAIL_CLICK, 20), now=NOW)
    assert explanation.behaviour == 25
    (line,) = [c for c in explanation.contributions if c.kind == "behaviour"]
    assert "capped at 25" in line.detail


def test_pricing_page_visits_score_more_than_other_visits() -> None:
    pricing = events(EventType.PAGE_VIEW, 1, url="https://example.com/pricing")
    blog = events(EventType.PAGE_VIEW, 1, url="https://example.com/blog/x")
    assert score_lead(DECISION_MAKER, VP, pricing, now=NOW).behaviour == 10
    assert score_lead(DECISION_MAKER, VP, blog, now=NOW).behaviour == 2


def test_decay_halves_behaviour_after_one_half_life() -> None:
    fresh = score_lead(DECISION_MAKER, VP, events(EventType.DOWNLOAD, 2), now=NOW)
    stale = score_lead(DECISION_MAKER, VP, events(EventType.DOWNLOAD, 2, days_ago=30), now=NOW)
    assert (fresh.behaviour, stale.behaviour) == (20, 10)


def test_decay_factor_is_one_for_events_not_yet_aged() -> None:
    assert decay_factor(timedelta(0), timedelta(days=30)) == 1.0
    assert decay_factor(timedelta(days=60), timedelta(days=30)) == pytest.approx(0.25)


def test_unsubscribe_is_a_penalty_that_does_not_decay() -> None:
    old = events(EventType.UNSUBSCRIBE, 1, days_ago=300)
    assert score_lead(DECISION_MAKER, VP, old, now=NOW).behaviour == -50


def test_long_inactivity_costs_points() -> None:
    long_ago = VP.model_copy(update={"created_at": NOW - timedelta(days=200)})
    clicks = events(EventType.EMAIL_CLICK, 1, days_ago=120)
    explanation = score_lead(DECISION_MAKER, long_ago, clicks, now=NOW)
    assert [c.label for c in explanation.contributions][-1] == "inactive"
    recent = score_lead(DECISION_MAKER, long_ago, events(EventType.EMAIL_CLICK, 1), now=NOW)
    assert "inactive" not in [c.label for c in recent.contributions]


def test_a_rejection_resets_earlier_behaviour_by_the_carryover() -> None:
    before = events(EventType.DOWNLOAD, 3)
    reset = score_lead(
        DECISION_MAKER, VP, before, now=NOW, reset_at=NOW + timedelta(seconds=1), carryover=0.0
    )
    halved = score_lead(
        DECISION_MAKER, VP, before, now=NOW, reset_at=NOW + timedelta(seconds=1), carryover=0.5
    )
    assert (reset.behaviour, halved.behaviour) == (0, 15)


@pytest.mark.parametrize("days_ago", [0, 3, 17, 45, 200])
def test_the_explanation_adds_up_to_the_score(days_ago: int) -> None:
    mixed = (
        events(EventType.EMAIL_OPEN, 7, days_ago=days_ago)
        + events(EventType.EMAIL_CLICK, 3, days_ago=days_ago / 2)
        + events(EventType.PAGE_VIEW, 2, days_ago=days_ago, url="/demo")
        + events(EventType.WEBINAR_ATTENDED, 1, days_ago=days_ago + 1)
    )
    explanation = score_lead(DECISION_MAKER, VP, mixed, now=NOW, adjustment=7)
    assert sum(c.points for c in explanation.contributions) == explanation.total
    assert explanation.fit + explanation.behaviour == explanation.total


def test_a_lead_qualifies_when_fit_and_behaviour_pass_their_thresholds() -> None:
    assert not score_lead(DECISION_MAKER, VP, events(EventType.EMAIL_CLICK, 2), now=NOW).qualifies
    assert score_lead(DECISION_MAKER, VP, events(EventType.DEMO_REQUEST, 1), now=NOW).qualifies


def test_students_never_qualify() -> None:
    keen = events(EventType.DEMO_REQUEST, 1) + events(EventType.DOWNLOAD, 5)
    assert not score_lead(STUDENT, VP, keen, now=NOW).qualifies


def test_unknown_personas_get_the_general_model() -> None:
    assert scoring_model_for("nobody").name == "general"
    assert scoring_model_for(None).name == "general"
    assert set(SCORING_MODELS) >= {"decision-maker", "practitioner", "student"}

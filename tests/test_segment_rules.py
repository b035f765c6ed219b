"""Segment membership, pure: who is in a segment at `now`, and when to look again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.segment_dsl import (
    AnyCondition,
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
from journeys.segment_rules import (
    SegmentEvent,
    SegmentFacts,
    SegmentVerdict,
    evaluate,
    event_needs,
)
from journeys.segments import get_segment

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LONG_AGO = NOW - 400 * DAY


def segment(condition: AnyCondition) -> SegmentDefinition:
    return SegmentDefinition(name="test", description="", condition=condition)


def lead(**fields: Any) -> dict[str, Any]:
    return {"created_at": LONG_AGO, "properties": {}, **fields}


def facts(*evts: SegmentEvent, **fields: Any) -> SegmentFacts:
    return SegmentFacts(lead=lead(**fields), events=evts)


def view(at: datetime, url: str = "https://example.com/pricing") -> SegmentEvent:
    return SegmentEvent("page_view", at, {"url": url})


def event(type: str, at: datetime) -> SegmentEvent:
    return SegmentEvent(type, at, {})


PRICING = get_segment("pricing-visitors")
DORMANT = get_segment("dormant")
HOT_MQLS = get_segment("hot-mqls")


# --- at least N events within a window ----------------------------------------------------


def test_three_pricing_views_within_seven_days_make_a_pricing_visitor() -> None:
    verdict = evaluate(PRICING, facts(view(NOW - 6 * DAY), view(NOW - 2 * DAY), view(NOW)), NOW)

    assert verdict.member


def test_two_pricing_views_within_seven_days_do_not() -> None:
    verdict = evaluate(PRICING, facts(view(NOW - 2 * DAY), view(NOW - DAY)), NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=None)


def test_page_views_elsewhere_do_not_count_as_pricing_views() -> None:
    elsewhere = [view(NOW - i * DAY, url="https://example.com/blog") for i in range(3)]

    assert not evaluate(PRICING, facts(view(NOW), view(NOW - DAY), *elsewhere), NOW).member


def test_pricing_views_older_than_seven_days_do_not_count() -> None:
    old = view(NOW - 7 * DAY)  # leaves the window at exactly NOW

    assert not evaluate(PRICING, facts(old, view(NOW - DAY), view(NOW)), NOW).member


def test_a_pricing_visitor_is_rechecked_when_the_oldest_of_the_three_views_leaves_the_window() -> (
    None
):
    oldest = NOW - 5 * DAY
    verdict = evaluate(PRICING, facts(view(oldest), view(NOW - 2 * DAY), view(NOW)), NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=oldest + 7 * DAY)


def test_with_more_views_than_needed_the_recheck_is_when_too_few_remain() -> None:
    times = [NOW - 6 * DAY, NOW - 5 * DAY, NOW - 4 * DAY, NOW - DAY]
    verdict = evaluate(PRICING, facts(*(view(t) for t in times)), NOW)

    assert verdict.recheck_at == NOW - 5 * DAY + 7 * DAY  # the second leaves: two remain


def test_a_view_dated_in_the_future_counts_from_its_moment() -> None:
    later = NOW + DAY
    verdict = evaluate(PRICING, facts(view(NOW - DAY), view(NOW), view(later)), NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=later)


def test_event_property_filters_can_test_presence_and_equality() -> None:
    condition = events(
        "form_submit",
        within=DAY,
        where=[prop("form", "eq", "Contact"), prop("campaign", "exists")],
    )
    tagged = SegmentEvent("form_submit", NOW, {"form": "contact", "campaign": "q1"})
    untagged = SegmentEvent("form_submit", NOW, {"form": "contact"})

    assert evaluate(segment(condition), facts(tagged), NOW).member
    assert not evaluate(segment(condition), facts(untagged), NOW).member


# --- no events for a while ----------------------------------------------------------------


def test_sixty_days_without_an_open_or_click_make_a_confirmed_lead_dormant() -> None:
    verdict = evaluate(
        DORMANT, facts(event("email_open", NOW - 60 * DAY), consent_status="confirmed"), NOW
    )

    assert verdict == SegmentVerdict(member=True, recheck_at=None)


def test_a_recent_open_keeps_a_lead_out_of_dormant_until_the_sixtieth_day_after_it() -> None:
    last_open = NOW - 20 * DAY
    verdict = evaluate(
        DORMANT,
        facts(
            event("email_open", NOW - 30 * DAY),
            event("email_open", last_open),
            event("page_view", NOW),  # not an open or a click: no engagement with email
            consent_status="confirmed",
        ),
        NOW,
    )

    assert verdict == SegmentVerdict(member=False, recheck_at=last_open + 60 * DAY)


def test_a_click_breaks_the_silence_as_an_open_does() -> None:
    verdict = evaluate(
        DORMANT, facts(event("email_click", NOW - DAY), consent_status="confirmed"), NOW
    )

    assert not verdict.member


def test_a_lead_created_less_than_sixty_days_ago_is_not_dormant_until_sixty_days_old() -> None:
    created = NOW - 10 * DAY
    verdict = evaluate(DORMANT, facts(consent_status="confirmed", created_at=created), NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=created + 60 * DAY)


def test_a_silent_lead_without_confirmed_consent_is_not_dormant_and_needs_no_recheck() -> None:
    verdict = evaluate(
        DORMANT, facts(event("email_open", NOW - DAY), consent_status="unsubscribed"), NOW
    )

    assert verdict == SegmentVerdict(member=False, recheck_at=None)


def test_an_open_dated_in_the_future_ends_the_silence_at_its_moment() -> None:
    later = NOW + 2 * DAY
    verdict = evaluate(DORMANT, facts(event("email_open", later), consent_status="confirmed"), NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=later)


# --- a date in a lead property ------------------------------------------------------------


TRIAL_ENDING = segment(date_within("trial_ends_at", 3 * DAY))
TRIAL_ENDS = NOW + 10 * DAY


def trial(ends: Any) -> SegmentFacts:
    return facts(properties={"trial_ends_at": ends})


def test_date_within_enters_three_days_before_the_date() -> None:
    before = evaluate(TRIAL_ENDING, trial(TRIAL_ENDS.isoformat()), NOW)
    entered = evaluate(TRIAL_ENDING, trial(TRIAL_ENDS.isoformat()), TRIAL_ENDS - 3 * DAY)

    assert before == SegmentVerdict(member=False, recheck_at=TRIAL_ENDS - 3 * DAY)
    assert entered == SegmentVerdict(member=True, recheck_at=TRIAL_ENDS)


def test_date_within_leaves_when_the_date_passes() -> None:
    verdict = evaluate(TRIAL_ENDING, trial(TRIAL_ENDS.isoformat()), TRIAL_ENDS)

    assert verdict == SegmentVerdict(member=False, recheck_at=None)


def test_date_within_the_past_holds_from_the_date_for_the_window() -> None:
    renewed = segment(date_within("renewed_at", 7 * DAY, direction="past"))
    lead_facts = facts(properties={"renewed_at": (NOW - 2 * DAY).isoformat()})

    verdict = evaluate(renewed, lead_facts, NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=NOW + 5 * DAY)


def test_a_date_without_a_time_is_midnight_utc() -> None:
    verdict = evaluate(TRIAL_ENDING, trial("2025-03-12"), NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=datetime(2025, 3, 12, tzinfo=UTC))


def test_a_missing_or_unreadable_date_is_never_within() -> None:
    assert evaluate(TRIAL_ENDING, trial("next tuesday"), NOW) == SegmentVerdict(False, None)
    assert evaluate(TRIAL_ENDING, facts(), NOW) == SegmentVerdict(False, None)


# --- combinators --------------------------------------------------------------------------


def test_not_inverts_the_verdict_and_keeps_its_recheck() -> None:
    oldest = NOW - 5 * DAY
    lead_facts = facts(view(oldest), view(NOW - DAY), view(NOW))

    verdict = evaluate(segment(not_(PRICING.condition)), lead_facts, NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=oldest + 7 * DAY)


def test_any_holds_when_one_of_its_conditions_holds() -> None:
    condition = any_of(field("score", "gte", 80), field("persona", "eq", "practitioner"))

    assert evaluate(segment(condition), facts(score=10, persona="practitioner"), NOW).member
    assert not evaluate(segment(condition), facts(score=10, persona="buyer"), NOW).member


def test_all_holds_only_when_every_condition_holds() -> None:
    condition = all_of(field("score", "gte", 80), field("persona", "eq", "practitioner"))

    assert evaluate(segment(condition), facts(score=90, persona="practitioner"), NOW).member
    assert not evaluate(segment(condition), facts(score=90, persona="buyer"), NOW).member


def test_all_is_rechecked_at_the_earliest_change_among_its_conditions() -> None:
    condition = all_of(events("page_view", within=7 * DAY), date_within("trial_ends_at", 3 * DAY))
    lead_facts = facts(view(NOW - 6 * DAY), properties={"trial_ends_at": TRIAL_ENDS.isoformat()})

    verdict = evaluate(segment(condition), lead_facts, NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=NOW + DAY)  # the view leaves


def test_all_held_false_by_a_timeless_condition_needs_no_recheck() -> None:
    condition = all_of(field("score", "gte", 80), events("page_view", within=7 * DAY))

    verdict = evaluate(segment(condition), facts(view(NOW), score=10), NOW)

    assert verdict == SegmentVerdict(member=False, recheck_at=None)


def test_any_held_true_by_a_timeless_condition_needs_no_recheck() -> None:
    condition = any_of(field("score", "gte", 80), events("page_view", within=7 * DAY))

    verdict = evaluate(segment(condition), facts(view(NOW), score=90), NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=None)


# --- lead fields and journeys -------------------------------------------------------------


def test_field_conditions_read_consent_account_and_custom_properties() -> None:
    condition = all_of(
        field("consent_status", "eq", "confirmed"),
        field("account_qualified", "eq", True),
        field("account_score", "gt", 50),
        field("property:plan", "in", ["trial", "starter"]),
    )
    lead_facts = facts(
        consent_status="confirmed",
        account_qualified=True,
        account_score=60,
        properties={"plan": "Trial"},
    )

    assert evaluate(segment(condition), lead_facts, NOW).member


def test_topics_contains_one_whole_topic_in_any_case() -> None:
    condition = segment(field("topics", "contains", "Data"))

    assert evaluate(condition, facts(topics=["security", "data"]), NOW).member
    assert not evaluate(condition, facts(topics=["big data"]), NOW).member
    assert not evaluate(condition, facts(), NOW).member


def test_created_at_compares_with_an_iso_date() -> None:
    condition = segment(field("created_at", "gte", "2025-03-01"))

    assert evaluate(condition, facts(created_at=NOW), NOW).member
    assert not evaluate(condition, facts(created_at=datetime(2025, 2, 1, tzinfo=UTC)), NOW).member


def test_in_journey_is_being_in_it_and_completed_is_having_finished_it() -> None:
    in_welcome = SegmentFacts(lead=lead(), journeys_in=frozenset({"welcome"}))
    done_welcome = SegmentFacts(lead=lead(), journeys_completed=frozenset({"welcome"}))

    assert evaluate(segment(in_journey("welcome")), in_welcome, NOW).member
    assert not evaluate(segment(in_journey("welcome")), done_welcome, NOW).member
    assert evaluate(segment(in_journey("welcome", completed=True)), done_welcome, NOW).member


# --- the shipped hot-mqls segment ---------------------------------------------------------


def test_an_mql_scoring_eighty_is_a_hot_mql() -> None:
    assert evaluate(HOT_MQLS, facts(lifecycle_stage="mql", score=80), NOW).member
    assert not evaluate(HOT_MQLS, facts(lifecycle_stage="mql", score=79), NOW).member


def test_a_demo_request_within_fourteen_days_makes_a_hot_mql_until_sales_own_the_lead() -> None:
    demo = event("demo_request", NOW - 3 * DAY)

    verdict = evaluate(HOT_MQLS, facts(demo, lifecycle_stage="lead", score=5), NOW)

    assert verdict == SegmentVerdict(member=True, recheck_at=NOW + 11 * DAY)
    assert not evaluate(HOT_MQLS, facts(demo, lifecycle_stage="customer"), NOW).member


# --- lookback and timezones ---------------------------------------------------------------


def test_segments_need_each_type_within_its_longest_count_window_or_silence() -> None:
    needs = event_needs([PRICING, DORMANT, HOT_MQLS])

    assert needs == {
        "page_view": 7 * DAY, "demo_request": 14 * DAY,
        "email_open": 60 * DAY, "email_click": 60 * DAY,
    }  # fmt: skip
    assert event_needs([segment(date_within("trial_ends_at", 3 * DAY))]) == {}


def test_evaluation_needs_an_aware_now() -> None:
    try:
        evaluate(PRICING, facts(), NOW.replace(tzinfo=None))
    except ValueError:
        return
    raise AssertionError("a naive now was accepted")


# --- a recheck is never late --------------------------------------------------------------

HOUR = timedelta(hours=1)
_moments = st.integers(min_value=-24 * 30, max_value=24 * 30).map(lambda h: NOW + h * HOUR)
_leaves: st.SearchStrategy[AnyCondition] = st.one_of(
    st.builds(
        lambda n, d: events("page_view", at_least=n, within=d * DAY),
        st.integers(1, 3),
        st.integers(1, 10),
    ),
    st.builds(lambda d: no_events(("page_view", "email_open"), for_=d * DAY), st.integers(1, 10)),
    st.builds(
        lambda d, direction: date_within("due_at", d * DAY, direction=direction),
        st.integers(1, 10),
        st.sampled_from(["ahead", "past"]),
    ),
    st.sampled_from([field("score", "gte", 50), field("score", "lt", 50)]),
)
_conditions = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda cs: all_of(*cs)),
        st.lists(children, min_size=1, max_size=3).map(lambda cs: any_of(*cs)),
        children.map(not_),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(
    condition=_conditions,
    times=st.lists(st.tuples(st.sampled_from(["page_view", "email_open"]), _moments), max_size=6),
    due=_moments,
    created=_moments,
)
def test_the_verdict_holds_until_its_recheck(
    condition: AnyCondition, times: list[tuple[str, datetime]], due: datetime, created: datetime
) -> None:
    definition = segment(condition)
    lead_facts = SegmentFacts(
        lead={"score": 60, "created_at": created, "properties": {"due_at": due.isoformat()}},
        events=tuple(event(type, at) for type, at in times),
    )
    verdict = evaluate(definition, lead_facts, NOW)
    horizon = verdict.recheck_at or NOW + 90 * DAY
    moment = NOW
    while moment < horizon:  # every hour (all moments above are whole hours) until then
        assert evaluate(definition, lead_facts, moment).member == verdict.member, moment
        moment += HOUR

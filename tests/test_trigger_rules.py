"""Which journeys fire for what happened to a lead (journeys/triggers.py, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from journeys.dsl import LifecycleStage
from journeys.forms import FORMS
from journeys.registry import all_triggers
from journeys.segments import all_segments
from journeys.triggers import (
    HappenedEvent,
    LeadDates,
    OnForm,
    OnSchedule,
    OnSegmentEntry,
    SegmentEntry,
    StageReached,
    firings,
    occurrences,
    on_date,
    on_event,
    on_segment_entry,
    on_stage,
    where,
)

AT = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _event(event_id: str, kind: str, **properties: object) -> HappenedEvent:
    return HappenedEvent(event_id=event_id, type=kind, occurred_at=AT, properties=properties)


def test_an_event_trigger_fires_once_per_event_id_of_its_type() -> None:
    triggers = {"trial-onboarding": (on_event("trial_started"),)}

    fired = firings(triggers, events=(_event("e1", "trial_started"), _event("e2", "page_view")))

    assert [(f.journey, f.cause_key) for f in fired] == [("trial-onboarding", "event:e1")]


def test_an_event_filter_must_hold_for_the_trigger_to_fire() -> None:
    triggers = {"pricing": (on_event("page_view", where("url", "contains", "/PRICING")),)}

    fired = firings(
        triggers,
        events=(_event("a", "page_view", url="https://x.test/pricing"),
                _event("b", "page_view", url="https://x.test/blog")),
    )  # fmt: skip

    assert [f.cause_key for f in fired] == ["event:a"]


def test_each_segment_entry_is_a_cause_of_its_own() -> None:
    triggers = {"pricing-follow-up": (on_segment_entry("pricing-visitors"),)}
    later = AT.replace(day=20)

    fired = firings(
        triggers,
        entries=(SegmentEntry(segment="pricing-visitors", at=AT),
                 SegmentEntry(segment="pricing-visitors", at=later),
                 SegmentEntry(segment="dormant", at=AT)),
    )  # fmt: skip

    assert len({f.cause_key for f in fired}) == 2
    assert {f.trigger for f in fired} == {"segment_entry:pricing-visitors"}


def test_a_stage_trigger_fires_for_that_stage_only() -> None:
    triggers = {"mql-alert": (on_stage(LifecycleStage.MQL),)}

    fired = firings(
        triggers,
        stages=(StageReached(stage=LifecycleStage.MQL, key="mql:l1:1/stage"),
                StageReached(stage=LifecycleStage.SAL, key="sal:l1")),
    )  # fmt: skip

    assert [f.cause_key for f in fired] == ["stage:mql:l1:1/stage"]


def test_a_filter_on_a_missing_property_does_not_hold() -> None:
    assert not where("plan", "eq", "pro").matches({})
    assert where("plan", "exists", True).matches({"plan": "pro"})


def _dates(now: datetime, zone: str = "Europe/Berlin", **properties: object) -> LeadDates:
    return LeadDates(properties=properties, zone=zone, now=now)


def test_a_yearly_date_fires_at_the_local_hour_on_the_day() -> None:
    trigger = on_date("birthday", every_year=True, at_hour=9)
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)

    _, upcoming = occurrences(trigger, _dates(now, birthday="1990-12-24"))

    assert upcoming == datetime(2026, 12, 24, 8, tzinfo=UTC)  # 09:00 in Berlin (CET)


def test_a_yearly_date_that_has_passed_this_year_comes_again_next_year() -> None:
    trigger = on_date("birthday", every_year=True)
    now = datetime(2026, 12, 1, tzinfo=UTC)

    last, upcoming = occurrences(trigger, _dates(now, zone="UTC", birthday="1990-03-02"))

    assert (last, upcoming) == (
        datetime(2026, 3, 2, 9, tzinfo=UTC),
        datetime(2027, 3, 2, 9, tzinfo=UTC),
    )


def test_the_29th_of_february_is_the_28th_in_a_common_year() -> None:
    trigger = on_date("birthday", every_year=True)
    now = datetime(2026, 12, 1, tzinfo=UTC)

    _, upcoming = occurrences(trigger, _dates(now, zone="UTC", birthday="2000-02-29"))

    assert upcoming == datetime(2027, 2, 28, 9, tzinfo=UTC)


def test_an_offset_moves_a_one_off_date_before_it() -> None:
    trigger = on_date("renewal_date", offset=-timedelta(days=30))
    now = datetime(2026, 12, 1, tzinfo=UTC)

    _, upcoming = occurrences(trigger, _dates(now, zone="UTC", renewal_date="2027-03-31"))

    assert upcoming == datetime(2027, 3, 1, 9, tzinfo=UTC)


def test_a_date_fires_once_on_its_moment_and_not_for_one_long_past() -> None:
    triggers = {"renewal-reminder": (on_date("renewal_date", offset=-timedelta(days=30)),)}
    moment = datetime(2027, 3, 1, 9, tzinfo=UTC)

    due = firings(triggers, dates=_dates(moment, zone="UTC", renewal_date="2027-03-31"))
    stale = firings(
        triggers, dates=_dates(moment + timedelta(days=3), zone="UTC", renewal_date="2027-03-31")
    )

    assert [f.cause_key for f in due] == ["date:renewal_date:2027-03-01"]
    assert stale == []


def test_a_missing_or_unreadable_date_never_fires() -> None:
    trigger = on_date("birthday", every_year=True)
    now = datetime(2026, 12, 1, tzinfo=UTC)

    assert occurrences(trigger, _dates(now)) == (None, None)
    assert occurrences(trigger, _dates(now, birthday="soon")) == (None, None)


def test_every_form_is_the_trigger_of_exactly_one_journey() -> None:
    for name in FORMS:
        declaring = [
            journey
            for journey, triggers in all_triggers().items()
            if any(isinstance(t, OnForm) and t.form == name for t in triggers)
        ]
        assert len(declaring) == 1, (name, declaring)


def test_a_journey_triggers_only_on_declared_forms_segments_and_events() -> None:
    for journey, triggers in all_triggers().items():
        for trigger in triggers:
            if isinstance(trigger, OnForm):
                assert trigger.form in FORMS, (journey, trigger)
            if isinstance(trigger, OnSegmentEntry | OnSchedule):
                assert trigger.segment in all_segments(), (journey, trigger)


def test_a_date_at_the_calendars_edge_never_fires_and_never_fails() -> None:
    trigger = on_date("renewal_date", offset=-timedelta(days=30))
    now = datetime(2026, 12, 1, tzinfo=UTC)

    for edge in ("0001-01-01", "9999-12-31"):
        assert occurrences(trigger, _dates(now, zone="Pacific/Auckland", renewal_date=edge)) == (
            None,
            None,
        )


def test_a_date_firing_is_keyed_by_the_local_day_whatever_the_zone() -> None:
    triggers = {"birthday-greeting": (on_date("birthday", every_year=True, at_hour=9),)}
    now = datetime(2025, 5, 10, 10, tzinfo=UTC)
    utc = firings(triggers, dates=_dates(now, "UTC", birthday="1990-05-10"))
    auckland = firings(triggers, dates=_dates(now, "Pacific/Auckland", birthday="1990-05-10"))

    assert [f.cause_key for f in utc] == [f.cause_key for f in auckland]
    assert [f.cause_key for f in utc] == ["date:birthday:2025-05-10"]

"""Which journeys fire for what happened to a lead (journeys/triggers.py, pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from journeys.dsl import LifecycleStage
from journeys.triggers import (
    HappenedEvent,
    SegmentEntry,
    StageReached,
    firings,
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

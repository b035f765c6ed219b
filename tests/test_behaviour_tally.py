"""Running behaviour totals: folding events in at successive moments scores a lead as
scoring all its events at once does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.behaviour_tally import (
    empty_tally,
    fingerprint,
    fold,
    score_tally,
    tally_from_json,
    usable,
)
from journeys.dsl import EventType
from journeys.scoring import LeadFacts, ScoredEvent, score_lead
from journeys.scoring_models import DECISION_MAKER, PRACTITIONER

START = datetime(2026, 1, 1, tzinfo=UTC)
FACTS = LeadFacts(title="VP Marketing", company_size=800, created_at=START)
KINDS = [
    EventType.PAGE_VIEW, EventType.EMAIL_OPEN, EventType.EMAIL_CLICK, EventType.DOWNLOAD,
    EventType.DEMO_REQUEST, EventType.UNSUBSCRIBE,
]  # fmt: skip
URLS = [None, "https://x.example/pricing", "https://x.example/blog/a"]

an_event = st.builds(
    lambda kind, hours, url: ScoredEvent(
        type=kind, occurred_at=START + timedelta(hours=hours), url=url
    ),
    st.sampled_from(KINDS),
    st.floats(min_value=0, max_value=24 * 400),
    st.sampled_from(URLS),
)


def _folded_in_steps(
    events: list[ScoredEvent], steps: int, reset_at: datetime | None, now: datetime
) -> tuple[datetime, object]:
    """Fold the events in the order they happened, a batch at each of `steps` moments."""
    ordered = sorted(events, key=lambda e: e.occurred_at)
    tally = empty_tally(DECISION_MAKER, START, reset_at)
    size = max(1, len(ordered) // steps)
    for begin in range(0, len(ordered), size):
        batch = ordered[begin : begin + size]
        moment = max(batch[-1].occurred_at, tally.at)
        tally = fold(tally, DECISION_MAKER, batch, now=moment, reset_at=reset_at)
    return now, tally


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(an_event, max_size=60),
    steps=st.integers(min_value=1, max_value=8),
    later_days=st.floats(min_value=0, max_value=200),
    carryover=st.sampled_from([0.0, 0.5, 1.0]),
    reset_days=st.one_of(st.none(), st.floats(min_value=0, max_value=400)),
)
def test_folding_in_steps_scores_as_scoring_every_event_at_once(
    events: list[ScoredEvent],
    steps: int,
    later_days: float,
    carryover: float,
    reset_days: float | None,
) -> None:
    reset_at = None if reset_days is None else START + timedelta(days=reset_days)
    last = max((e.occurred_at for e in events), default=START)
    now = last + timedelta(days=later_days)
    _, tally = _folded_in_steps(events, steps, reset_at, now)
    assert usable(tally, DECISION_MAKER, reset_at, now)  # type: ignore[arg-type]

    stepwise = score_tally(DECISION_MAKER, FACTS, tally, now=now, carryover=carryover)  # type: ignore[arg-type]
    at_once = score_lead(
        DECISION_MAKER, FACTS, events, now=now, reset_at=reset_at, carryover=carryover
    )

    # Exact but for float rounding: a contribution may differ by the one point of a
    # rounding that falls the other way.
    for mine, theirs in zip(stepwise.contributions, at_once.contributions, strict=True):
        assert (mine.kind, mine.label, mine.detail) == (theirs.kind, theirs.label, theirs.detail)
        assert abs(mine.points - theirs.points) <= 1


def test_a_later_reset_moves_every_tallied_event_before_it() -> None:
    clicks = [ScoredEvent(type=EventType.DOWNLOAD, occurred_at=START)] * 2
    tally = fold(empty_tally(DECISION_MAKER, START, None), DECISION_MAKER, clicks, now=START,
                 reset_at=None)  # fmt: skip
    reset_at = START + timedelta(hours=1)

    assert usable(tally, DECISION_MAKER, reset_at, reset_at)
    moved = fold(tally, DECISION_MAKER, [], now=reset_at, reset_at=reset_at)
    halved = score_tally(DECISION_MAKER, FACTS, moved, now=reset_at, carryover=0.5)

    assert (
        halved.behaviour
        == score_lead(
            DECISION_MAKER, FACTS, clicks, now=reset_at, reset_at=reset_at, carryover=0.5
        ).behaviour
    )


def test_a_tally_is_rebuilt_for_another_model_an_earlier_reset_or_an_earlier_moment() -> None:
    tally = empty_tally(DECISION_MAKER, START, START)

    assert not usable(tally, PRACTITIONER, START, START)
    assert not usable(tally, DECISION_MAKER, START - timedelta(days=1), START)
    assert not usable(tally, DECISION_MAKER, None, START)
    assert not usable(tally, DECISION_MAKER, START, START - timedelta(seconds=1))
    assert not usable(None, DECISION_MAKER, START, START)


def test_a_stored_tally_reads_back_and_an_unreadable_one_is_none() -> None:
    event = ScoredEvent(type=EventType.EMAIL_CLICK, occurred_at=START)
    tally = fold(empty_tally(DECISION_MAKER, START, None), DECISION_MAKER, [event], now=START,
                 reset_at=None)  # fmt: skip

    assert tally_from_json(tally.model_dump(mode="json")) == tally
    assert tally_from_json({"model": fingerprint(DECISION_MAKER)}) is None
    assert tally_from_json(None) is None

"""Segment membership, pure: does a lead with these facts belong, and when to look again.

`evaluate` answers with a `SegmentVerdict`: `member`, and `recheck_at` — the earliest moment
after `now` at which the verdict could change with no new fact (an event leaving a window,
a silence growing long enough, a date coming within range or passing), or None when only a
new fact can change it. A recheck may be early (then the verdict is simply the same), never
late.

Time-based conditions are piecewise constant in time, closed on the left: an event at t
counts in a `within` window from t until t + within (exclusive), a silence is complete at
exactly last + for, an `ahead` date d is in range from d - within until d (exclusive). So
each condition's next change is found exactly, by evaluating it at its candidate moments.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from journeys.conditions import attribute_value, holds
from journeys.dsl import Condition
from journeys.segment_dsl import (
    AllOf,
    AnyCondition,
    AnyOf,
    DateWithin,
    EventCount,
    InJourney,
    LeadField,
    NoEvents,
    Not,
    PropertyFilter,
    SegmentDefinition,
    parse_moment,
    walk,
)


@dataclass(frozen=True)
class SegmentEvent:
    """One event of the lead: its type, when it occurred (aware), its properties."""

    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True)
class SegmentFacts:
    """What a segment may look at.

    `lead`: a branch's facts (`journeys.dsl.LEAD_ATTRIBUTES`, `properties`) plus
    `consent_status`, `topics` (a list), `account_score`, `account_qualified` and
    `created_at` (an aware datetime). `events`: at least those `event_needs(...)` names.
    """

    lead: dict[str, Any]
    journeys_in: frozenset[str] = frozenset()
    journeys_completed: frozenset[str] = frozenset()
    events: tuple[SegmentEvent, ...] = ()


@dataclass(frozen=True)
class SegmentVerdict:
    """Whether the lead is a member, and the earliest moment after now the answer could
    change without a new fact (None: it can't)."""

    member: bool
    recheck_at: datetime | None


def evaluate(definition: SegmentDefinition, facts: SegmentFacts, now: datetime) -> SegmentVerdict:
    """Is a lead with `facts` in segment `definition` at `now` (aware), and until when?"""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    member, change = _verdict(definition.condition, facts, now)
    return SegmentVerdict(member=member, recheck_at=change)


def event_needs(definitions: Iterable[SegmentDefinition]) -> dict[str, timedelta]:
    """Which events evaluating `definitions` needs, per type: those within the longest
    `within` of an event count and `for` of a silence of that type (and any dated later).
    Loading costs what the lead's recent activity of those types costs, not its history:
    an older event changes no verdict — a count's window has passed it, and a silence
    longer than `for` since it is a silence whether it began then or earlier (the lead's
    creation starts one too)."""
    windows: dict[str, timedelta] = {}

    def need(kind: str, span: timedelta) -> None:
        windows[kind] = max(windows.get(kind, timedelta(0)), span)

    for definition in definitions:
        for _, node in walk(definition.condition):
            if isinstance(node, EventCount):
                need(node.type, node.within)
            elif isinstance(node, NoEvents):
                for kind in node.types:
                    need(kind, node.for_)
    return windows


# --- evaluation ---------------------------------------------------------------------------

# A condition's value now and the first moment after now it changes (None: never, unless
# a fact changes).
_Verdict = tuple[bool, datetime | None]


def _verdict(condition: AnyCondition, facts: SegmentFacts, now: datetime) -> _Verdict:
    match condition:
        case LeadField():
            return _field_holds(condition, facts.lead), None
        case InJourney():
            journeys = facts.journeys_completed if condition.completed else facts.journeys_in
            return condition.journey in journeys, None
        case EventCount():
            return _event_count(condition, facts.events, now)
        case NoEvents():
            return _no_events(condition, facts, now)
        case DateWithin():
            return _date_within(condition, facts.lead, now)
        case AllOf():
            return _combine([_verdict(c, facts, now) for c in condition.of], every=True)
        case AnyOf():
            return _combine([_verdict(c, facts, now) for c in condition.of], every=False)
        case Not():
            value, change = _verdict(condition.condition, facts, now)
            return not value, change


def _combine(verdicts: list[_Verdict], *, every: bool) -> _Verdict:
    """`all` (every=True) or `any` of the children. The result changes at the earliest of
    its children's changes — unless a child that decides it (a false one for `all`, a true
    one for `any`) never changes, and then neither does the result."""
    value = all(v for v, _ in verdicts) if every else any(v for v, _ in verdicts)
    deciding = not every  # the child value that decides the result alone
    if any(v == deciding and change is None for v, change in verdicts):
        return value, None
    changes = [change for _, change in verdicts if change is not None]
    return value, min(changes, default=None)


def _next_change(
    value_at: Callable[[datetime], bool], candidates: Iterable[datetime], now: datetime
) -> datetime | None:
    """The first candidate after `now` at which `value_at` differs from its value now
    (`candidates` must hold every moment the value can change at)."""
    current = value_at(now)
    for moment in sorted(c for c in candidates if c > now):
        if value_at(moment) != current:
            return moment
    return None


def _field_holds(condition: LeadField, lead: dict[str, Any]) -> bool:
    if condition.attribute == "topics":
        topics = lead.get("topics") or ()
        wanted = str(condition.value).casefold()
        return any(isinstance(t, str) and t.casefold() == wanted for t in topics)
    if condition.attribute == "created_at" and condition.op != "exists":
        return _compare_moments(condition, attribute_value(lead, "created_at"))
    # Segment attributes beyond a branch's are plain facts too: `holds` reads them alike.
    branch_condition = Condition.model_construct(
        attribute=condition.attribute, op=condition.op, value=condition.value
    )
    return holds(branch_condition, lead)


def _compare_moments(condition: LeadField, raw: Any) -> bool:
    actual, expected = parse_moment(raw), parse_moment(condition.value)
    if actual is None or expected is None:
        return False
    match condition.op:
        case "gt":
            return actual > expected
        case "gte":
            return actual >= expected
        case "lt":
            return actual < expected
        case "lte":
            return actual <= expected
    return False


def _filter_holds(event_filter: PropertyFilter, event: SegmentEvent) -> bool:
    condition = Condition.model_construct(
        attribute=f"property:{event_filter.property}", op=event_filter.op, value=event_filter.value
    )
    return holds(condition, {"properties": event.properties})


def _matching_times(condition: EventCount, events: Iterable[SegmentEvent]) -> list[datetime]:
    return [
        e.occurred_at
        for e in events
        if e.type == condition.type and all(_filter_holds(f, e) for f in condition.where)
    ]


def _event_count(condition: EventCount, events: Iterable[SegmentEvent], now: datetime) -> _Verdict:
    starts = sorted(_matching_times(condition, events))
    ends = [t + condition.within for t in starts]  # sorted too

    def value_at(moment: datetime) -> bool:
        counted = bisect_right(starts, moment) - bisect_right(ends, moment)
        return counted >= condition.at_least

    return value_at(now), _next_change(value_at, [*starts, *ends], now)


def _no_events(condition: NoEvents, facts: SegmentFacts, now: datetime) -> _Verdict:
    wanted = set(condition.types)
    created = parse_moment(facts.lead.get("created_at"))
    # The silence restarts at the lead's creation and at every matching event.
    starts = sorted(
        [e.occurred_at for e in facts.events if e.type in wanted]
        + ([created] if created is not None else [])
    )

    def value_at(moment: datetime) -> bool:
        happened = bisect_right(starts, moment)
        return happened == 0 or starts[happened - 1] + condition.for_ <= moment

    return value_at(now), _next_change(
        value_at, [*starts, *(s + condition.for_ for s in starts)], now
    )


def _date_within(condition: DateWithin, lead: dict[str, Any], now: datetime) -> _Verdict:
    moment = parse_moment((lead.get("properties") or {}).get(condition.property))
    if moment is None:
        return False, None
    try:
        if condition.direction == "ahead":
            start, end = moment - condition.within, moment
        else:
            start, end = moment, moment + condition.within
    except OverflowError:  # a date at the calendar's edge: no occasion, never in range
        return False, None

    def value_at(t: datetime) -> bool:
        return start <= t < end

    return value_at(now), _next_change(value_at, (start, end), now)
